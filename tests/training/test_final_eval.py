"""The evaluation that ends a run: the whole val split, as ``charlm eval`` scores it, each
figure beside the checkpoint it belongs to, and the last point of TensorBoard's val curve."""

import json
import re

import pytest
from helpers import TRAIN, run_ok, scalars

# 200k characters: a val split of 10,000, scored 2,000 at a time in between
ARGS = ["--data", "c.txt", "--set", "train.eval_interval=10", "--set",
        "train.eval_max_chars=2000", "--set", "train.sample_length=0"]


@pytest.fixture
def work(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text, encoding="utf-8")
    return tmp_path


def _eval_loss(work, checkpoint):
    out = run_ok("eval", checkpoint, "--json", cwd=work).stdout
    return json.loads(out)["loss_nats"], json.loads(out)["chars"]


def _done(out):
    return next(line for line in out.splitlines() if line.startswith("done:"))


def test_the_done_line_gives_the_whole_val_split_loss_that_charlm_eval_gives(work):
    done = _done(run_ok(*TRAIN, *ARGS, "--run-name", "w", cwd=work).stdout)
    loss, chars = _eval_loss(work, "checkpoints/w/best.pt")
    assert chars == 9_999 and f"over the whole val split ({chars:,} chars)" in done, done
    assert f"val loss {loss:.4f} nats/char" in done and "checkpoints/w/best.pt" in done


def test_the_done_line_puts_each_loss_beside_its_own_checkpoint(work):
    run_ok(*TRAIN, *ARGS, "--run-name", "w", cwd=work)
    # a learning rate that ruins the weights: best.pt keeps the step-40 ones
    done = _done(run_ok("train", "--resume", "w", "--max-steps", 60, "--lr", 0.5, "--set",
                        "optim.schedule=constant", "--no-progress", cwd=work).stdout)
    last, _ = _eval_loss(work, "checkpoints/w/last.pt")
    best, _ = _eval_loss(work, "checkpoints/w/best.pt")
    assert best < last
    # best.pt's figure is the one that chose it: a 2,000-character sample at step 40
    chose = [loss for step, loss in scalars(work / "runs" / "w", "val/best_loss") if step == 60]
    pattern = (rf"val loss {last:.4f} nats/char, .* over the whole val split \(9,999 chars\), "
               rf"checkpoint checkpoints/w/last\.pt; best: val loss {chose[0]:.4f} nats/char, "
               rf".* over 2,048 val chars sampled across the split \(step 40\), checkpoint "
               rf"checkpoints/w/best\.pt")
    assert re.search(pattern, done), done


def test_tensorboard_val_curve_has_every_evaluation_and_ends_on_the_whole_split(work):
    run_ok(*TRAIN, *ARGS, "--run-name", "w", cwd=work)
    points = scalars(work / "runs" / "w", "loss/val")
    steps = [step for step, _ in points]
    # curve points at steps 0, 1, 2, 4, 8 and past 7/8 and 15/16 of the 40 steps; one a step:
    # the last is the whole split's
    assert steps == [0, 1, 2, 4, 8, 10, 20, 30, 36, 39, 40]
    whole, _ = _eval_loss(work, "checkpoints/w/last.pt")
    assert points[-1][1] == pytest.approx(whole, abs=1e-5)
    assert scalars(work / "runs" / "w", "bpc/val")[-1][0] == 40
