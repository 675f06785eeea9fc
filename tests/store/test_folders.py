"""Run folders: claimed by one process at a time, named so every system can hold them, and left
clean by a run that never started."""

import json
import os

import pytest
from helpers import TINY, TRAIN, one_line_error, run_cli, run_ok


def test_two_runs_never_share_a_folder(trained, tmp_path, monkeypatch):
    work, corpus, _ = trained
    monkeypatch.setattr("time.strftime", lambda fmt, *a: "20260101-000000")  # same second
    a = run_ok(*TRAIN, "--data", corpus, "--max-steps", 2, cwd=tmp_path).stdout
    b = run_ok(*TRAIN, "--data", corpus, "--max-steps", 2, cwd=tmp_path).stdout
    assert "run 20260101-000000-lstm," in a and "run 20260101-000000-lstm-2," in b
    lock = tmp_path / "checkpoints" / "busy" / ".lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": os.getppid()}))
    one_line_error(run_cli(*TRAIN, "--data", corpus, "--run-name", "busy", cwd=tmp_path),
                   "is in use by process", "--run-name")
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": 2**22 + 12345}))  # gone
    (tmp_path / "runs" / "busy").mkdir(parents=True)
    (tmp_path / "runs" / "busy" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    took = run_ok(*TRAIN, "--data", corpus, "--run-name", "busy", "--max-steps", 2,
                  cwd=tmp_path)
    assert "taking over the lock" in took.stderr and not lock.exists()
    assert list((tmp_path / "runs" / "busy").glob("crashed-*/events.out.tfevents.*"))


@pytest.mark.parametrize("args, message", [
    (["train", "--run-name", "x" * 300], "use at most 100"),
    (["train", "--run-name", "con.run"], "Windows cannot create"),
    (["train", "--run-name", "trailing."], "Windows cannot create"),
    (["train", "--run-name", "latest"], "could not be named afterwards"),
    (["train", "--run-name", "-dash"], "could not be named afterwards"),
    (["train", "--data", "y" * 300 + ".txt"], "cannot use --data"),
    (["train", "--checkpoint-dir", "z" * 300 + "/c"], "choose another folder with "
                                                       "--checkpoint-dir"),
    (["train", "--log-dir", "corpus.txt/x"], "choose another folder with --log-dir"),
    (["sample", "w" * 300], "cannot use checkpoint"),
    (["eval", "--checkpoint-dir", "v" * 300], "cannot use --checkpoint-dir"),
])
def test_operating_system_limits_on_names_and_paths(trained, args, message):
    work, corpus, _ = trained
    extra = ["--data", corpus, "--max-steps", 2] if args[0] == "train" and "--data" not in \
        args else []
    one_line_error(run_cli(*args[:1], *TINY * (args[0] == "train"), *extra, *args[1:],
                           cwd=work), message)


def test_a_run_that_fails_before_training_leaves_no_folders(tmp_path):
    one_line_error(run_cli(*TRAIN, "--data", "missing.txt", "--run-name", "gone", cwd=tmp_path),
                   "missing.txt", "--data")
    assert not (tmp_path / "checkpoints" / "gone").exists()
    assert not (tmp_path / "runs" / "gone").exists()


def test_a_file_in_the_way_of_a_run_folder_names_the_run_name(trained):
    work, corpus, _ = trained
    (work / "checkpoints" / "notes.md").write_text("mine\n")
    one_line_error(run_cli(*TRAIN, "--data", corpus, "--run-name", "notes.md", cwd=work),
                   "File exists; choose another --run-name")
    assert (work / "checkpoints" / "notes.md").read_text() == "mine\n"
