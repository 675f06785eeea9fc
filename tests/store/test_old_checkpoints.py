"""Checkpoints written by the previous code still work on any CPU: tests/fixtures/format1
holds a ``last.pt`` of each kind (trained 3 steps on own.txt) with the logits, greedy text and
eval figure that code gave."""

import json
import shutil

import pytest
import torch
from helpers import FIXTURES, run_ok

from charlm.generation.sampling import sample_text
from charlm.store.checkpoint import load_checkpoint
from charlm.store.restore import restore_model

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


# The fixtures' logits were computed on one CPU and are compared on another: float32 sums of a
# few hundred products, reordered by another SIMD width, differ by a few ulps (1.2e-7 seen
# between an AMD EPYC and a Xeon with AVX-512 on logits below 1). 1e-5 is that worst case,
# 256 terms x 2**-24 x |term| < 1 = 1.5e-5, rounded; a wrong weight or layout is off by 1e-2.
ATOL = 1e-5
# An argmax flips only if the two best logits are closer than the logits' error: the greedy
# text is compared exactly, and every step's margin is asserted far above ATOL, so that a
# machine's rounding can never make this test fail (nor pass) by chance.
MIN_MARGIN = 1e-4


def greedy_margins(model, vocab, length: int) -> list[float]:
    """The gap between the two best logits at each step of greedy decoding from a newline."""
    logits, hidden = model(torch.from_numpy(vocab.encode("\n").astype("int64"))[None])
    logits, gaps = logits[:, -1], []
    for _ in range(length):
        best = logits[0].topk(2).values
        gaps.append((best[0] - best[1]).item())
        logits, hidden = model.step(logits.argmax(-1), hidden)
    return gaps


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_checkpoint_gives_the_same_logits_and_greedy_text(name, expected_logits):
    model, vocab, _ = restore_model(load_checkpoint(OLD / f"{name}.pt"), "cpu")
    with torch.no_grad():
        logits, _ = model(torch.arange(12).remainder(vocab.size).view(2, 6))
        margins = greedy_margins(model, vocab, 30)
    torch.testing.assert_close(logits, expected_logits[name], atol=ATOL, rtol=0)
    assert min(margins) > MIN_MARGIN, f"{name}: a fixture whose greedy text a rounding can flip"
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
