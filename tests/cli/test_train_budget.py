"""What a budget means: the schedule follows steps when a step limit is given, a resumed run
says where its learning rate goes, and patience notices a run that overfits."""

import random

import torch
from helpers import TINY, run_ok

from charlm.store.checkpoint import load_checkpoint

TRAIN = ["train", *TINY]


def test_same_seed_and_step_budget_give_identical_weights_with_a_time_limit(trained):
    work, corpus, _ = trained          # configs/tiny.yaml sets max_time: 60 as well
    for name in ("s1", "s2"):
        run_ok(*TRAIN, "--data", corpus, "--run-name", name, "--max-steps", 60, "--seed", 5,
               cwd=work)
    a, b = (load_checkpoint(work / "checkpoints" / n / "last.pt")["model"] for n in ("s1", "s2"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def overfitting_corpus(path):
    """Random letters: a model can memorise the train part, and the val part shares nothing
    with it but the letter frequencies, so val loss falls briefly and then rises."""
    rng = random.Random(0)
    path.write_text("".join(rng.choice("abcdefghij \n") for _ in range(2000)))
    return path


def test_patience_warns_and_early_stop_stops_an_overfitting_run(tmp_path):
    corpus = overfitting_corpus(tmp_path / "random.txt")
    args = [*TRAIN, "--data", corpus, "--max-steps", 400, "--hidden-size", 128, "--lr", 0.01,
            "--batch-size", 4, "--seq-len", 32, "--set", "train.eval_interval=10",
            "--set", "train.patience=3", "--set", "data.val_frac=0.1",
            "--set", "train.sample_length=0", "--set", "train.log_gates=false"]
    warned = run_ok(*args, "--run-name", "warned", cwd=tmp_path)
    assert "val loss has not improved for 3 evaluations" in warned.stderr
    assert "checkpoints/warned/best.pt holds the step-" in warned.stderr
    assert ", 400 steps" in warned.stdout              # a warning only: the run goes on
    stopped = run_ok(*args, "--run-name", "stopped", "--set", "train.early_stop=true",
                     cwd=tmp_path)
    assert "done: stopped early at step" in stopped.stdout
    last = load_checkpoint(tmp_path / "checkpoints" / "stopped" / "last.pt")["state"]
    best = load_checkpoint(tmp_path / "checkpoints" / "stopped" / "best.pt")["state"]
    assert last["step"] < 400 and last["evals_since_best"] == 3
    assert best["step"] == last["best_step"] == last["step"] - 30


def test_a_larger_budget_on_resume_says_the_rate_rises_and_which_seconds(trained):
    work, corpus, _ = trained
    run_ok(*TRAIN, "--data", corpus, "--run-name", "more", "--max-steps", 40, cwd=work)
    out = run_ok("train", "--resume", "more", "--max-steps", 80, cwd=work)
    assert "the learning rate rises from" in out.stderr and "warm restart" in out.stderr
    assert "--set optim.schedule=constant --lr" in out.stderr
    assert "s of training in all (" in out.stdout and "in this command)" in out.stdout
