"""DistributedDataParallel through torchrun: 2 gloo processes on the CPU.

With the same global batch and seed, 2 ranks must compute what 1 process computes, resume
exactly, write files only from rank 0, and leave checkpoints a single process can use.
"""

import os
import subprocess
import sys

import pytest
import torch
from helpers import CONFIGS, charlm, scalars

pytestmark = pytest.mark.slow  # every test starts processes

ARGS = ["--config", CONFIGS / "tiny.yaml", "--no-progress", "--seed", 3, "--device", "cpu",
        "--max-steps", 30, "--set", "train.log_interval=1"]


def torchrun(*args, cwd, nproc=2, check=True):
    """``python -m torch.distributed.run --standalone --nproc_per_node=N -m charlm ARGS``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "charlm", *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"torchrun {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def weights(cwd, run, name="last.pt"):
    return torch.load(cwd / "checkpoints" / run / name, weights_only=False)


@pytest.fixture
def corpus(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text, encoding="utf-8")
    return ["--data", "c.txt"]


def test_two_processes_match_one(tmp_path, corpus):
    two = torchrun("train", *ARGS, *corpus, "--run-name", "two", cwd=tmp_path)
    charlm("train", *ARGS, *corpus, "--run-name", "one", cwd=tmp_path,
           env={"OMP_NUM_THREADS": "1"})
    a, b = weights(tmp_path, "two"), weights(tmp_path, "one")
    for key in b["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-5, rtol=0)
    assert a["hidden"][0].shape == b["hidden"][0].shape  # the whole (L, B, H) state is saved
    torch.testing.assert_close(a["hidden"][0], b["hidden"][0], atol=1e-5, rtol=0)
    assert a["state"]["last_val_loss"] == pytest.approx(b["state"]["last_val_loss"], abs=1e-5)
    losses_two = [v for _, v in scalars(tmp_path / "runs" / "two", "train/loss")]
    losses_one = [v for _, v in scalars(tmp_path / "runs" / "one", "train/loss")]
    assert len(losses_two) == 30 and losses_two == pytest.approx(losses_one, abs=1e-5)
    # rank 0 alone reports and writes
    assert two.stdout.count("done: run two") == 1
    assert len(list((tmp_path / "runs" / "two").glob("events.out.tfevents.*"))) == 1


def test_resume_under_ddp_is_exact(tmp_path, corpus):
    dropout = ["--num-layers", 2, "--dropout", 0.2]  # per-rank RNG states must be restored
    torchrun("train", *ARGS, *corpus, *dropout, "--run-name", "straight", cwd=tmp_path)
    paused = torchrun("train", *ARGS, *corpus, *dropout, "--run-name", "cut",
                      "--stop-at-step", 13, cwd=tmp_path)
    assert "paused: run cut at step 13" in paused.stdout
    torchrun("train", "--resume", "cut", "--no-progress", cwd=tmp_path)
    a, b = weights(tmp_path, "cut"), weights(tmp_path, "straight")
    assert a["state"]["step"] == b["state"]["step"] == 30
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    cut = [v for _, v in scalars(tmp_path / "runs" / "cut", "train/loss")]
    straight = [v for _, v in scalars(tmp_path / "runs" / "straight", "train/loss")]
    assert cut == straight


def test_ddp_checkpoint_in_one_process(tmp_path, corpus):
    torchrun("train", *ARGS, *corpus, "--run-name", "d", "--stop-at-step", 20, cwd=tmp_path)
    out = charlm("sample", "d", "--length", 50, "--seed", 1, cwd=tmp_path).stdout
    assert len(out) >= 50
    three = torchrun("train", "--resume", "d", cwd=tmp_path, nproc=3, check=False)
    assert three.returncode != 0
    assert "resume it with a number of processes that divides 8 (1, 2, 4, 8), not 3" \
        in three.stderr
    charlm("train", "--resume", "d", "--no-progress", cwd=tmp_path)  # continues in 1 process
    assert weights(tmp_path, "d")["state"]["step"] == 30


def test_batch_must_split_evenly(tmp_path, corpus):
    proc = torchrun("train", *ARGS, *corpus, "--batch-size", 7, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "train.batch_size 7 is not a multiple of the 2 processes" in proc.stderr


def test_a_data_error_is_reported_by_every_rank_without_a_traceback(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"abc\xc3\x28def" * 100)
    proc = torchrun("train", *ARGS, "--data", "bad.txt", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("bad.txt is not valid utf-8: byte 0xc3") == 2, proc.stderr  # both ranks
    assert "Connection closed by peer" not in proc.stderr
