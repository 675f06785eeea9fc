"""Exact resume: a run stopped at step N and resumed equals the uninterrupted run, on CPU.

Each cell is trained once straight through; then the same run is stopped three ways (a clean
stop at step N, SIGINT, and kill -9 right after the step-N checkpoint) and resumed. Final
weights must be identical and so must every per-step training loss. The straight runs, the
clean stop and every resume run in-process; SIGINT and kill -9 need a process of their own
(slow).
"""

import signal
import time

import pytest
import torch
from helpers import CONFIGS, run_ok, scalars, start_charlm

from charlm.config.cells import CELLS
from charlm.store.checkpoint import load_checkpoint

N = 10       # checkpoint interval: the step the stops happen at (or just after)
STEPS = 80   # the whole run: the stopped processes have 70 steps left to be caught in
ARGS = ["--config", CONFIGS / "tiny.yaml", "--seed", 7, "--max-steps", STEPS, "--no-progress",
        "--num-layers", 2, "--dropout", 0.1, "--hidden-size", 16, "--batch-size", 4,
        "--set", "train.max_time=null", "--set", f"train.checkpoint_interval={N}",
        "--set", "train.eval_interval=20", "--set", "train.log_interval=1",
        "--set", "train.eval_max_chars=500",
        "--set", "train.share_cpu=false"]  # a busy machine must not change the thread count


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def corpus(workdir):
    from conftest import stdlib_slice

    path = workdir / "corpus.txt"
    path.write_text(stdlib_slice(30_000), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=list(CELLS))
def straight(request, workdir, corpus):
    """The uninterrupted run of one cell: (cell, its last.pt, its per-step losses)."""
    cell = request.param
    run_ok("train", *ARGS, "--cell", cell, "--data", corpus, "--run-name", f"straight-{cell}",
           cwd=workdir)
    return cell, workdir / "checkpoints" / f"straight-{cell}" / "last.pt", \
        scalars(workdir / "runs" / f"straight-{cell}", "train/loss")


def wait_for(path, proc, timeout_s=60.0):
    """Poll until ``path`` exists (the process must still be running)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out waiting for the checkpoint"
        time.sleep(0.002)


def resume(run, workdir, target=None):
    """``charlm train --resume`` (in-process), started in a later second than the stopped run's
    event files: TensorBoard reads a run's files in name order (creation second, host, pid,
    counter), and this process's pid or counter may sort below the stopped run's."""
    made = [int(f.name.split(".")[3]) for f in (workdir / "runs" / run).glob("events.out.*")]
    while made and time.time() < max(made) + 1:
        time.sleep(0.01)
    return run_ok("train", "--resume", target or run, cwd=workdir)


def assert_same_run(straight, run, workdir):
    cell, reference, losses = straight
    a, b = load_checkpoint(reference), load_checkpoint(workdir / "checkpoints" / run / "last.pt")
    assert b["state"]["step"] == a["state"]["step"] == STEPS
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    resumed = scalars(workdir / "runs" / run, "train/loss")
    assert [s for s, _ in resumed] == list(range(1, STEPS + 1))
    assert resumed == losses


def test_clean_stop_then_resume_is_exact(straight, workdir, corpus):
    cell = straight[0]
    run = f"clean-{cell}"
    out = run_ok("train", *ARGS, "--cell", cell, "--data", corpus, "--run-name", run,
                 "--stop-at-step", N, cwd=workdir).stdout
    assert f"paused: run {run} at step {N}" in out
    proc = resume(run, workdir)
    assert f"resuming at step {N}" in proc.stderr and "done: run" in proc.stdout
    assert_same_run(straight, run, workdir)


def stop_after_first_checkpoint(cell, run, corpus, workdir, stop):
    """Start a run, ``stop(proc)`` once its first last.pt exists; return (rc, stderr, step)."""
    proc = start_charlm("train", *ARGS, "--cell", cell, "--data", corpus, "--run-name", run,
                        cwd=workdir)
    wait_for(workdir / "checkpoints" / run / "last.pt", proc)
    stop(proc)
    _, err = proc.communicate(timeout=60)
    step = load_checkpoint(workdir / "checkpoints" / run / "last.pt")["state"]["step"]
    return proc.returncode, err, step


@pytest.mark.slow
def test_sigint_then_resume_is_exact(straight, workdir, corpus):
    run = f"sigint-{straight[0]}"
    rc, err, step = stop_after_first_checkpoint(straight[0], run, corpus, workdir,
                                                lambda p: p.send_signal(signal.SIGINT))
    assert rc == 130, err
    assert f"continue with: charlm train --resume {run}" in err and "Traceback" not in err
    assert "Error:" not in err
    assert N <= step < STEPS
    resume(run, workdir)
    assert_same_run(straight, run, workdir)


@pytest.mark.slow
def test_kill9_after_checkpoint_then_resume_is_exact(straight, workdir, corpus):
    run = f"kill-{straight[0]}"
    rc, _, step = stop_after_first_checkpoint(straight[0], run, corpus, workdir,
                                              lambda p: p.kill())
    assert rc == -signal.SIGKILL and step % N == 0 and step < STEPS
    resume(run, workdir, "latest")
    assert_same_run(straight, run, workdir)
