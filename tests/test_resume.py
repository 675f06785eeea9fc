"""Exact resume: a run stopped at step N and resumed equals the uninterrupted run, on CPU.

Each cell is trained once straight through; then the same run is stopped three ways (a clean
stop at step N, SIGINT, and kill -9 right after the step-N checkpoint) and resumed. Final
weights must be identical and so must every per-step training loss.
"""

import signal
import time

import pytest
import torch
from helpers import CONFIGS, charlm, scalars, start_charlm

from charlm.checkpoint import load_checkpoint
from charlm.cell_table import CELLS

N = 50  # checkpoint interval: the step the stops happen at (or just after)
ARGS = ["--config", CONFIGS / "tiny.yaml", "--seed", 7, "--max-steps", 300, "--no-progress",
        "--num-layers", 2, "--dropout", 0.1, "--hidden-size", 48,
        "--set", "train.max_time=null", "--set", f"train.checkpoint_interval={N}",
        "--set", "train.eval_interval=100", "--set", "train.log_interval=1",
        "--set", "train.eval_max_chars=3000"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def corpus(workdir):
    from conftest import stdlib_slice

    path = workdir / "corpus.txt"
    path.write_text(stdlib_slice(150_000), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=list(CELLS))
def straight(request, workdir, corpus):
    """The uninterrupted run of one cell: (cell, its last.pt, its per-step losses)."""
    cell = request.param
    charlm("train", *ARGS, "--cell", cell, "--data", corpus, "--run-name", f"straight-{cell}",
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


def assert_same_run(straight, run, workdir):
    cell, reference, losses = straight
    a, b = load_checkpoint(reference), load_checkpoint(workdir / "checkpoints" / run / "last.pt")
    assert b["state"]["step"] == a["state"]["step"] == 300
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    resumed = scalars(workdir / "runs" / run, "train/loss")
    assert [s for s, _ in resumed] == list(range(1, 301))
    assert resumed == losses


def test_clean_stop_then_resume_is_exact(straight, workdir, corpus):
    cell = straight[0]
    run = f"clean-{cell}"
    out = charlm("train", *ARGS, "--cell", cell, "--data", corpus, "--run-name", run,
                 "--stop-at-step", N, cwd=workdir).stdout
    assert f"paused: run {run} at step {N}" in out
    proc = charlm("train", "--resume", run, cwd=workdir)
    assert "resuming at step 50" in proc.stderr and "done: run" in proc.stdout
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


def test_sigint_then_resume_is_exact(straight, workdir, corpus):
    run = f"sigint-{straight[0]}"
    rc, err, step = stop_after_first_checkpoint(straight[0], run, corpus, workdir,
                                                lambda p: p.send_signal(signal.SIGINT))
    assert rc == 130, err
    assert f"continue with: charlm train --resume {run}" in err and "Traceback" not in err
    assert "Error:" not in err
    assert N <= step < 300
    charlm("train", "--resume", run, cwd=workdir)
    assert_same_run(straight, run, workdir)


def test_kill9_after_checkpoint_then_resume_is_exact(straight, workdir, corpus):
    run = f"kill-{straight[0]}"
    rc, _, step = stop_after_first_checkpoint(straight[0], run, corpus, workdir,
                                              lambda p: p.kill())
    assert rc == -signal.SIGKILL and step % N == 0 and step < 300
    charlm("train", "--resume", "latest", cwd=workdir)
    assert_same_run(straight, run, workdir)
