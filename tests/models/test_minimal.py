"""minGRU and minLSTM: the parallel scan equals the sequential recurrence, two steps computed by
hand from the paper's equations, and gradients (IndRNN's too) checked numerically."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.models.indrnn import IndRNNCore
from charlm.models.minimal import (
    MinGRUCore,
    MinLSTMCore,
    MinRecurrence,
    scan_linear,
    scan_log,
    scan_sequential,
)


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def g(v: float) -> float:
    """The paper's positive activation: v + 1/2 for v >= 0, sigmoid(v) below."""
    return v + 0.5 if v >= 0 else sigmoid(v)


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 3), steps=st.integers(1, 40), size=st.integers(1, 8),
       carried=st.booleans(), seed=st.integers(0, 2**16))
def test_log_space_scan_equals_the_sequential_recurrence(batch, steps, size, carried, seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, steps, size, generator=gen) * 0.999 + 1e-3     # in (0, 1)
    b = torch.rand(batch, steps, size, generator=gen) * 3 + 1e-3         # positive
    h0 = torch.rand(batch, size, generator=gen) + 0.1 if carried else None
    torch.testing.assert_close(scan_log(a.log(), b.log(), h0), scan_sequential(a, b, h0),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("core", [MinGRUCore, MinLSTMCore])
@pytest.mark.parametrize("layers", [1, 3])
def test_parallel_and_sequential_modes_give_the_same_outputs(core, layers):
    torch.manual_seed(0)
    model = core(8, 16, layers)
    x = torch.randn(4, 50, 8)
    h0 = torch.rand(layers, 4, 16) + 0.05
    parallel, hp, _ = model.run(x, h0, parallel=True)
    sequential, hs, _ = model.run(x, h0, parallel=False)
    torch.testing.assert_close(parallel, sequential, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hp, hs, atol=1e-5, rtol=1e-5)


def one_unit(kind: str, weights: list[float], biases: list[float]) -> MinRecurrence:
    rec = MinRecurrence(1, kind).double()
    with torch.no_grad():
        rec.gates.weight.copy_(torch.tensor(weights, dtype=torch.float64).view(-1, 1))
        rec.gates.bias.copy_(torch.tensor(biases, dtype=torch.float64))
    return rec


@pytest.mark.parametrize("parallel", [True, False])
def test_mingru_two_steps_by_hand(parallel):
    """z_t = sigma(W_z x_t), h~_t = g(W_h x_t), h_t = (1 - z_t) h_{t-1} + z_t h~_t
    (Feng et al. 2024, section 3.1)."""
    rec = one_unit("mingru", [0.5, 1.0], [0.0, 0.25])
    x, h0 = [1.0, -2.0], 0.5
    h, want = h0, []
    for xt in x:
        z, cand = sigmoid(0.5 * xt), g(1.0 * xt + 0.25)
        h = (1 - z) * h + z * cand
        want.append(h)
    got, _ = rec(torch.tensor(x, dtype=torch.float64).view(1, 2, 1),
                 torch.tensor([[h0]], dtype=torch.float64), parallel)
    assert got.flatten().tolist() == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx([1.2780742, 0.9741631], rel=1e-6)  # worked by hand


@pytest.mark.parametrize("parallel", [True, False])
def test_minlstm_two_steps_by_hand(parallel):
    """f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t), h_t = f'_t h_{t-1} + i'_t h~_t
    (Feng et al. 2024, section 3.2)."""
    rec = one_unit("minlstm", [1.0, -0.5, 2.0], [0.1, 0.0, -0.5])
    x, h0 = [0.3, 1.5], 0.2
    h, want = h0, []
    for xt in x:
        f, i, cand = sigmoid(1.0 * xt + 0.1), sigmoid(-0.5 * xt), g(2.0 * xt - 0.5)
        h = f / (f + i) * h + i / (f + i) * cand
        want.append(h)
    got, _ = rec(torch.tensor(x, dtype=torch.float64).view(1, 2, 1),
                 torch.tensor([[h0]], dtype=torch.float64), parallel)
    assert got.flatten().tolist() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("make", [lambda: MinGRUCore(3, 4, 2), lambda: MinLSTMCore(3, 4, 2),
                                  lambda: IndRNNCore(3, 4, 2)], ids=["mingru", "minlstm",
                                                                     "indrnn"])
def test_gradients_match_finite_differences(make):
    torch.manual_seed(0)
    core = make().double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    h0 = (torch.rand(2, 2, 4, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, h0: core(x, h0)[0], (x, h0), eps=1e-6,
                                    atol=1e-5)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_the_three_scans_agree_on_a_layer(kind):
    """The log-space scan (GPU), the linear scan with its own backward (CPU training) and the
    step-by-step recurrence (sampling) give one result, and the same gradients."""
    torch.manual_seed(0)
    rec = MinRecurrence(16, kind).double()
    x = torch.randn(3, 30, 16, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(3, 16, dtype=torch.float64) + 0.1
    log_a, log_b, _ = rec.log_coefficients(x)
    a, b, _ = rec.coefficients(x)
    results = [scan_log(log_a, log_b, h0), scan_linear(a, b, h0), scan_sequential(a, b, h0)]
    grads = [torch.autograd.grad(r.pow(2).sum(), x, retain_graph=True)[0] for r in results]
    for r, gr in zip(results[1:], grads[1:]):
        torch.testing.assert_close(r, results[0], atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(gr, grads[0], atol=1e-9, rtol=1e-9)


def test_linear_scan_gradients_match_finite_differences():
    torch.manual_seed(0)
    a = (torch.rand(2, 6, 3, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    b = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(scan_linear, (a, b, h0))
