"""Tunes as processes: one killed with SIGKILL in the middle of a trial and resumed, and
several sharing one study, in an SQLite file and on a real PostgreSQL server. No trial is lost
or run twice, and no two trials share a number."""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from helpers import charlm, start_charlm, tune_args

optuna = pytest.importorskip("optuna")

pytestmark = pytest.mark.slow
UNBOUNDED = ["--pruner", "none", "--set", "train.max_steps=null"]  # trials run their time


def load(work, name, url=None):
    return optuna.load_study(study_name=name,
                             storage=url or f"sqlite:///{work / 'runs' / 'tune' / f'{name}.db'}")


def wait_for(condition, proc, timeout_s=300.0):
    """Poll ``condition`` until it holds; fail with the process's stderr if it ends first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the tune ended first ({proc.returncode}):\n"
                                 f"{proc.stderr.read()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_tune_killed_mid_trial_resumes_without_losing_or_repeating_a_trial(tmp_path,
                                                                             stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text[:60_000], encoding="utf-8")
    trials = tmp_path / "checkpoints" / "tune" / "k"
    proc = start_charlm(*tune_args(tmp_path, 4, "--data", "c.txt", "--study", "k",
                                   "--trials", 3, *UNBOUNDED), cwd=tmp_path)
    wait_for((trials / "trial-1" / "config.yaml").exists, proc)  # trial 1 is training
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    first = (trials / "trial-0" / "last.pt").stat().st_mtime_ns
    assert {t.number: t.state.name for t in load(tmp_path, "k").trials} == \
        {0: "COMPLETE", 1: "RUNNING"}
    resumed = charlm("tune", "--study", "k", "--no-progress", cwd=tmp_path)
    assert f"trial 1: marked failed (its process {proc.pid} on this machine is gone)" in \
        resumed.stderr
    study = load(tmp_path, "k")
    assert {t.number: t.state.name for t in study.trials} == \
        {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE", 3: "COMPLETE"}  # 3 results, as asked
    assert (trials / "trial-0" / "last.pt").stat().st_mtime_ns == first  # not run again
    assert len({t.user_attrs["run"] for t in study.trials}) == 4
    assert "stopped" not in resumed.stderr and " 1  fail" in resumed.stdout


def test_ctrl_c_ends_the_running_trial_failed_and_keeps_the_study(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text[:60_000], encoding="utf-8")
    trials = tmp_path / "checkpoints" / "tune" / "c"
    proc = start_charlm(*tune_args(tmp_path, 30, "--data", "c.txt", "--study", "c",
                                   "--trials", 2, *UNBOUNDED), cwd=tmp_path)
    wait_for((trials / "trial-0" / "best.pt").exists, proc)  # its first report: training
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "stopped: trial 0 marked failed; study c saved (1 trial); continue with: " \
           "charlm tune --study c" in err
    trial = load(tmp_path, "c").trials[0]
    assert trial.state.name == "FAIL" and trial.user_attrs["error"] == "interrupted"
    assert (trials / "trial-0" / "last.pt").is_file()  # the run saved where it stopped
    assert " 0  fail" in out  # the table of the study, as it stands


def check_shared(study, workers, each):
    """Every worker ran its trials, each trial finished, none twice."""
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(workers * each)), numbers
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    assert len({t.user_attrs["run"] for t in study.trials}) == workers * each
    by_pid = {}
    for t in study.trials:
        by_pid[t.user_attrs["pid"]] = by_pid.get(t.user_attrs["pid"], 0) + 1
    assert sorted(by_pid.values()) == [each] * workers


def run_workers(work, args, workers):
    procs = [start_charlm(*args, cwd=work) for _ in range(workers)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    return outs


def test_two_processes_share_one_sqlite_study(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text[:60_000], encoding="utf-8")
    # both start on a study that does not exist yet: one makes it, the other joins
    run_workers(tmp_path, tune_args(tmp_path, 3, "--data", "c.txt", "--study", "two",
                                    "--trials", 2, *UNBOUNDED), 2)
    check_shared(load(tmp_path, "two"), 2, 2)


def _postgres_binary(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or \
        [p for p in [shutil.which(name)] if p]
    return found[-1] if found else None


@contextlib.contextmanager
def postgres_server():
    """A throwaway PostgreSQL cluster on a free loopback port, run as a user other than root
    (initdb refuses root); yields its URL, and is stopped and removed afterwards."""
    user = None if os.geteuid() else next(
        (u for u in ("postgres", "nobody") if _has_user(u)), None)
    base = tempfile.mkdtemp(prefix="charlm-pg-", dir="/tmp")  # pytest's tmp_path is 0700
    as_user = ["runuser", "-u", user, "--"] if user else []
    if user:
        os.chown(base, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    data, port = os.path.join(base, "data"), _free_port()
    ctl = [*as_user, _postgres_binary("pg_ctl"), "-D", data]
    try:
        subprocess.run([*as_user, _postgres_binary("initdb"), "-D", data, "-U", "postgres",
                        "-A", "trust", "-E", "UTF8", "--no-sync"], cwd=base, check=True,
                       capture_output=True)
        subprocess.run([*ctl, "-l", os.path.join(base, "log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
                        "start"], cwd=base, check=True, capture_output=True)
        subprocess.run([_postgres_binary("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U",
                        "postgres", "tune"], check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/tune"
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], cwd=base, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_share_one_postgresql_study(tmp_path, stdlib_text):
    if not all(_postgres_binary(b) for b in ("initdb", "pg_ctl", "createdb")):
        pytest.skip("PostgreSQL's initdb, pg_ctl and createdb are not installed "
                    "(apt-get install postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg2", reason="pip install 'charlm[postgres]' (psycopg2-binary)")
    if os.geteuid() == 0 and not (_has_user("postgres") or _has_user("nobody")):
        pytest.skip("running as root with no other user to run PostgreSQL as")
    (tmp_path / "c.txt").write_text(stdlib_text[:60_000], encoding="utf-8")
    with postgres_server() as url:
        # two workers, as on two machines: the same command, the same URL and study name
        run_workers(tmp_path, tune_args(tmp_path, 3, "--data", "c.txt", "--study", "pg",
                                        "--storage", url, "--trials", 2, *UNBOUNDED), 2)
        check_shared(load(tmp_path, "pg", url), 2, 2)
        report = charlm("tune", "--study", "pg", "--storage", url, "--report", cwd=tmp_path)
        assert report.stdout.count(" complete ") == 4
        assert not (tmp_path / "runs" / "tune" / "pg.db").exists()  # all of it on the server
