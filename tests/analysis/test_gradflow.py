"""Gradient flow through time: how far back the gradient of the loss reaches, per cell."""

import numpy as np
import pytest
import torch

from charlm.analysis.gradflow import (
    closed_form_profile,
    gradient_profile,
    sample_windows,
)
from charlm.config import ModelConfig
from charlm.data.vocab import Vocab
from charlm.models.lm import create_model


@pytest.fixture(scope="module")
def real_windows(stdlib_text):
    vocab = Vocab.from_text(stdlib_text)
    return vocab, sample_windows(vocab.encode(stdlib_text), 50 + 100 + 3, 16, seed=0)


def profile(cell, vocab, windows, horizon=100):
    torch.manual_seed(0)
    model = create_model(ModelConfig(cell=cell, hidden_size=128, num_layers=2), vocab.size)
    return gradient_profile(model, windows, horizon)


def test_vanilla_rnn_gradient_vanishes_orders_of_magnitude_faster(real_windows):
    vocab, windows = real_windows
    rnn, lstm, gru = (profile(c, vocab, windows) for c in ("rnn", "lstm", "gru"))
    assert all(len(p) == 101 and (p > 0).all() for p in (rnn, lstm, gru))
    assert lstm[100] > 1e3 * rnn[100] and gru[100] > 1e3 * rnn[100]
    assert rnn[0] > rnn[10] > rnn[50] > rnn[100]   # geometric decay through time


def test_profile_leaves_parameter_grads_alone(real_windows):
    vocab, windows = real_windows
    model = create_model(ModelConfig(cell="gru", hidden_size=16, num_layers=1), vocab.size)
    gradient_profile(model.train(), windows, 10)
    assert all(p.grad is None for p in model.parameters()) and model.training


@pytest.mark.parametrize("cell", ["mingru", "minlstm", "indrnn"])
def test_closed_form_gradient_through_time_equals_the_measured_one(real_windows, cell):
    """For one layer of a diagonal recurrence the gradient k steps back is dL/dh_T times a
    product of k diagonals (1 - z for minGRU, f' for minLSTM, u 1[h > 0] for IndRNN)."""
    vocab, windows = real_windows
    torch.manual_seed(0)
    model = create_model(ModelConfig(cell=cell, hidden_size=32, num_layers=1), vocab.size)
    measured = gradient_profile(model, windows, 100)
    closed = closed_form_profile(model, windows, 100)
    np.testing.assert_allclose(closed, measured, rtol=1e-9)
    deeper = create_model(ModelConfig(cell=cell, hidden_size=32, num_layers=2), vocab.size)
    assert closed_form_profile(deeper, windows, 100) is None  # other layers add paths
