"""Checkpoints written by the previous code still work: tests/fixtures/format1 holds a
``last.pt`` of each kind (trained 3 steps on own.txt) with the logits, greedy text and eval
figure that code gave."""

import json
import shutil

import pytest
import torch

from charlm.store.checkpoint import load_checkpoint, restore_model
from charlm.generation.sampling import sample_text

from helpers import FIXTURES, run_ok

OLD = FIXTURES / "format1"
EXPECTED = json.loads((OLD / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def expected_logits():
    return torch.load(OLD / "expected_logits.pt", weights_only=True)


@pytest.fixture
def own_txt(tmp_path):
    """The corpus the checkpoints were trained on, copied into the working folder."""
    return shutil.copy(OLD / "own.txt", tmp_path / "own.txt")


def test_every_kind_has_a_fixture(expected_logits):
    assert set(EXPECTED) == set(expected_logits) == {p.stem for p in OLD.glob("*.pt")} - \
        {"expected_logits"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_checkpoint_gives_the_same_logits_and_greedy_text(name, expected_logits):
    model, vocab, _ = restore_model(load_checkpoint(OLD / f"{name}.pt"), "cpu")
    with torch.no_grad():
        logits, _ = model(torch.arange(12).remainder(vocab.size).view(2, 6))
    assert torch.equal(logits, expected_logits[name])
    assert sample_text(model, vocab, "\n", 30, temperature=0.0) == EXPECTED[name]["greedy"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_checkpoint_evaluates_to_the_same_figure(name, tmp_path, own_txt):
    out = run_ok("eval", OLD / f"{name}.pt", "--data", own_txt, "--json", cwd=tmp_path).stdout
    assert json.loads(out)["loss_nats"] == pytest.approx(EXPECTED[name]["eval_val_loss_nats"],
                                                         abs=1e-6)


def test_old_checkpoint_resumes(tmp_path, own_txt):
    run = tmp_path / "checkpoints" / "lstm"
    run.mkdir(parents=True)
    shutil.copy(OLD / "lstm.pt", run / "last.pt")
    proc = run_ok("train", "--resume", run / "last.pt", "--data", own_txt, "--max-steps", 6,
                  cwd=tmp_path)
    assert "resuming at step 3" in proc.stderr and "done: run lstm, 6 steps" in proc.stdout
    assert load_checkpoint(run / "last.pt")["state"]["step"] == 6
