"""One training run end to end: every target used, the right figures at the end."""

from helpers import TRAIN, run_ok


def test_an_epoch_of_a_run_counts_every_training_target(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text[:445], encoding="utf-8")
    out = run_ok(*TRAIN, "--data", "c.txt", "--batch-size", 4, "--seq-len", 50,
                 "--max-epochs", 20, "--set", "train.max_steps=null",
                 "--set", "train.max_time=null", cwd=tmp_path).stdout
    # 399 training pairs: 4 streams of 99 and 3 over; ceil(99/50) = 2 steps an epoch
    assert "done: run" in out and ", 40 steps" in out
