"""IndRNN: two steps computed by hand from the paper's equations, and recurrent weights that stay
within the bound."""

import pytest
import torch

from charlm.models.indrnn import MAX_GAIN, T_MAX, IndRNNCore


def test_indrnn_two_steps_by_hand():
    """h_t = ReLU(W x_t + u h_{t-1} + b) (Li et al. 2018, equation 2), |u| clamped."""
    core = IndRNNCore(1, 2, 1).double()
    with torch.no_grad():
        core.inputs[0].weight.copy_(torch.tensor([[1.5], [-1.0]], dtype=torch.float64))
        core.inputs[0].bias.copy_(torch.tensor([0.1, 0.2], dtype=torch.float64))
        core.recurrent[0].copy_(torch.tensor([0.9, 3.0], dtype=torch.float64))
    bound = MAX_GAIN ** (1 / T_MAX)
    u = [0.9, bound]                                       # 3.0 is clamped to the bound
    x, h = [0.4, -0.8], [0.3, 0.6]
    want = []
    for xt in x:
        h = [max(0.0, w * xt + uu * hh + b) for w, uu, hh, b in zip([1.5, -1.0], u, h,
                                                                        [0.1, 0.2])]
        want.append(h)
    out, _ = core(torch.tensor(x, dtype=torch.float64).view(1, 2, 1),
                  torch.tensor([[[0.3, 0.6]]], dtype=torch.float64))
    assert out[0].tolist() == [pytest.approx(w, rel=1e-12) for w in want]


def test_indrnn_recurrent_weights_stay_within_the_bound():
    core = IndRNNCore(2, 3, 1)
    with torch.no_grad():
        core.recurrent[0].copy_(torch.tensor([-5.0, 0.5, 5.0]))
    bound = MAX_GAIN ** (1 / T_MAX)
    assert core.u(0).tolist() == pytest.approx([-bound, 0.5, bound])
