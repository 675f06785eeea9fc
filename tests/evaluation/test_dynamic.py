"""Dynamic evaluation: every segment is scored before the model adapts to it (the first
segment's score is the static one, and later text never changes earlier scores), the weights
come back afterwards, and adapting helps on text that repeats itself."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.errors import DataError
from charlm.evaluation.dynamic import (
    DynamicSettings,
    dynamic_evaluate,
    gradient_statistics,
)
from charlm.evaluation.static import evaluate
from charlm.models.lm import CharLM

V, N = 12, 50


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CharLM(V, "lstm", 8, 16, 2, dropout=0.2)


def text(seed: int, n: int = 400) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, n).astype(np.uint8)


TRAIN = text(99, 3000)
METHODS = [DynamicSettings("sgd", 1.0, 0.1, N), DynamicSettings("rms", 0.05, 0.02, N)]


@pytest.mark.parametrize("rule", METHODS, ids=lambda s: s.method)
def test_first_segment_scores_as_static_and_weights_come_back(model, rule):
    ids = text(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    found = dynamic_evaluate(model, ids, rule, train_ids=TRAIN)
    static, n = evaluate(model, ids[:N + 1], batch_size=1, seq_len=N)
    assert found.segment_nats[0] == pytest.approx(static * n, rel=1e-6)
    assert found.chars == len(ids) - 1 and len(found.segment_nats) == 8
    assert found.loss_nats == pytest.approx(found.segment_nats.sum() / found.chars)
    assert abs(found.loss_nats - evaluate(model, ids, 1, N)[0]) > 1e-3  # it did adapt
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters()) and model.training


@settings(max_examples=10, deadline=None)
@given(cut=st.integers(1, 299), seed=st.integers(0, 1000), which=st.sampled_from(METHODS))
def test_later_text_never_changes_earlier_scores(model, cut, seed, which):
    """Two texts that agree up to ``cut`` get the same score for every segment whose
    targets all lie before the cut: nothing is seen before it is scored."""
    a, b = text(seed, 300), text(seed, 300)
    b[cut:] = (b[cut:] + 1) % V
    sa, sb = (dynamic_evaluate(model, t, which, train_ids=TRAIN).segment_nats for t in (a, b))
    whole = cut // N if cut % N else cut // N - 1  # segment j scores targets jN+1 .. (j+1)N
    assert np.array_equal(sa[:whole], sb[:whole])
    assert not np.array_equal(sa, sb)


def test_adapting_helps_on_repeated_text(model):
    ids = np.tile(text(5, 10), 100)  # a 10-character pattern, 100 times
    static = evaluate(model, ids, 1, N)[0]
    for rule in (DynamicSettings("sgd", 3.0, 0.0, N), DynamicSettings("rms", 1e-3, 0.0, N)):
        assert dynamic_evaluate(model, ids, rule, train_ids=TRAIN).loss_nats < static - 0.2


def test_a_tiny_step_is_static_evaluation(model):
    ids = text(2)
    tiny = DynamicSettings("sgd", 1e-12, 0.0, N)
    assert dynamic_evaluate(model, ids, tiny).loss_nats == pytest.approx(
        evaluate(model, ids, 1, N)[0], rel=1e-6)


def test_gradient_statistics_and_refusals(model):
    ms = gradient_statistics(model, TRAIN, DynamicSettings(seq_len=N, stat_chunks=3))
    assert [m.shape for m in ms] == [p.shape for p in model.parameters()]
    assert all((m >= 0).all() for m in ms) and any((m > 0).any() for m in ms)
    with pytest.raises(DataError, match=r"on the train split, which has 0 characters \(it "
                                        r"needs 51\); use --dynamic-method sgd"):
        dynamic_evaluate(model, text(3), DynamicSettings("rms"), train_ids=None)
    with pytest.raises(DataError, match="at least 2"):
        dynamic_evaluate(model, text(3, 1), DynamicSettings("sgd"))
    with pytest.raises(ValueError, match="lr > 0"):
        DynamicSettings("rms", lr=0.0)


@pytest.mark.slow
def test_the_tuning_script_runs_end_to_end(trained, tmp_path):
    """scripts/dynamic_eval.py on a tiny run: tune on val, report test, every figure."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    work, _, run = trained
    script = Path(__file__).resolve().parents[2] / "scripts" / "dynamic_eval.py"
    proc = subprocess.run([sys.executable, script, run, "--lrs", "1e-4", "1e-3", "--decays", "0",
                           "0.02", "--tune-chars", "2000", "--json", tmp_path / "r.json"],
                          cwd=work, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "machine:" in proc.stdout and "chosen on val: lr " in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["grid"]) == 4 and report["result"]["split"] == "test"
    assert {"static_bpc", "dynamic_bpc", "static_s", "dynamic_s"} <= set(report["result"])
