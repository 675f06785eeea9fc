"""Scoring: the next-character loss, and evaluation that scores every target of a split once."""

import math
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.config.cells import CELLS
from charlm.data.layout import IGNORE
from charlm.evaluation.loss import loss_fn
from charlm.evaluation.static import evaluate, surprisal
from charlm.models.lm import CharLM

V = 50


def test_uniform_logits_give_ln_v():
    logits = torch.zeros(2, 5, V)
    targets = torch.randint(0, V, (2, 5))
    assert loss_fn(logits, targets).item() == pytest.approx(math.log(V), rel=1e-6)
    with pytest.raises(ValueError, match="differ in"):
        loss_fn(logits, targets[:, :4])


def test_evaluate_scores_every_target_once_and_matches_one_pass():
    torch.manual_seed(0)
    model = CharLM(20, "gru", 8, 16, 1)
    ids = np.random.default_rng(0).integers(0, 20, 103).astype(np.uint8)
    loss, n = evaluate(model, ids, batch_size=1, seq_len=7)
    assert n == 102
    t = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        logits, _ = model.eval()(t[:-1].unsqueeze(0))
        ref = loss_fn(logits, t[1:].unsqueeze(0)).item()
    assert loss == pytest.approx(ref, rel=1e-5)
    loss4, n4 = evaluate(model, ids, batch_size=4, seq_len=7)  # 25 per stream + 2 tail pairs
    assert n4 == 102 and abs(loss4 - ref) < 0.2


N_MAX = 300
MODELS = {}


def small_model(cell: str) -> CharLM:
    """One seeded model per cell, shared by the examples; its vocabulary holds every position
    of a text of N_MAX ids, so that the id of a target is its position."""
    if cell not in MODELS:
        torch.manual_seed(0)
        MODELS[cell] = CharLM(N_MAX, cell, 4, 8, 2).eval()
    return MODELS[cell]


def one_pass_loss(model: CharLM, ids: np.ndarray) -> float:
    """Mean loss of every target with the whole text read in one forward pass."""
    t = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        logits, _ = model(t[:-1].unsqueeze(0))
    return loss_fn(logits, t[1:].unsqueeze(0)).item()


def scored_targets(model, ids, batch_size, seq_len, warmup):
    """``evaluate``'s result and every target it passed to the loss, in order."""
    with mock.patch("charlm.evaluation.static.loss_fn", wraps=loss_fn) as spy:
        loss, count = evaluate(model, ids, batch_size, seq_len, warmup=warmup)
    targets = [int(t) for call in spy.call_args_list for t in call.args[1].flatten()
               if t != IGNORE]  # the padding of a ragged last step is not scored
    return loss, count, targets


@pytest.mark.parametrize("cell", list(CELLS))
@settings(max_examples=20, deadline=None)  # x 6 cells; the layout is the same for every cell
@given(n=st.integers(2, N_MAX), batch_size=st.integers(1, 40), seq_len=st.integers(1, 50),
       warmup=st.sampled_from([0, 5, 512]))
def test_evaluate_scores_every_target_once_for_any_sizes(cell, n, batch_size, seq_len, warmup):
    model = small_model(cell)
    ids = np.arange(n, dtype=np.uint16)          # id = position
    loss, count, targets = scored_targets(model, ids, batch_size, seq_len, warmup)
    assert count == n - 1 and sorted(targets) == list(range(1, n)) and math.isfinite(loss)
    one, one_count, one_targets = scored_targets(model, ids, 1, seq_len, warmup)
    assert one_count == n - 1 and one_targets == list(range(1, n))  # in reading order
    assert one == pytest.approx(one_pass_loss(model, ids), rel=1e-5)


def test_surprisal_scores_every_character_after_the_context():
    torch.manual_seed(0)
    model = CharLM(20, "lstm", 8, 16, 1)
    ids = np.random.default_rng(1).integers(0, 20, 40).astype(np.uint8)
    nats = surprisal(model, torch.from_numpy(ids.astype(np.int64)), torch.tensor([3]), chunk=7)
    assert nats.shape == (40,) and (nats > 0).all()
    mean, n = evaluate(model, np.concatenate([[3], ids]).astype(np.uint8), 1, seq_len=9)
    assert n == 40 and nats.double().mean().item() == pytest.approx(mean, rel=1e-5)


def test_a_sample_of_max_chars_is_spread_over_the_split_not_its_beginning():
    torch.manual_seed(0)
    model = CharLM(V, "gru", embedding_size=8, hidden_size=16, num_layers=1)
    with torch.no_grad():
        model.decoder.bias[0] = 5.0  # zeros (the first half) are easy, the rest is not
    rng = np.random.default_rng(0)
    ids = np.concatenate([np.zeros(8000), rng.integers(0, V, 8001)]).astype(np.int64)
    whole, n = evaluate(model, ids, 8, 16)
    sample, k = evaluate(model, ids, 8, 16, max_chars=1000)
    beginning, _ = evaluate(model, ids[:1001], 8, 16)  # the old rule: the first targets
    assert n == 16_000 and k == 8 * 16 * 8  # 8 chunks of 8 streams of 16, about 1000
    assert abs(sample - whole) < 0.1 * abs(beginning - whole)
    assert evaluate(model, ids, 8, 16, max_chars=10**6) == (whole, n)


def test_a_stop_abandons_an_evaluation_at_the_next_batch():
    from charlm.evaluation.static import EvaluationStopped

    torch.manual_seed(0)
    model = CharLM(10, "gru", embedding_size=4, hidden_size=8, num_layers=1)
    ids = np.random.default_rng(0).integers(0, 10, 5000)
    asked = []

    def stop():
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(EvaluationStopped, match="stopped after 2 of"):
        evaluate(model, ids, batch_size=4, seq_len=50, warmup=0, stop=stop)
    assert evaluate(model, ids, 4, 50, warmup=0, stop=lambda: False)[1] == 4999
