"""The reference cells (:mod:`charlm.models.reference`): equal to the fused PyTorch modules
within float rounding, recording every gate, and refusing modules they cannot step through."""

import pytest
import torch
from torch import nn

from charlm.analysis.gates import gate_saturation
from charlm.config.cells import CELLS
from charlm.models.lm import CharLM, core_class
from charlm.models.reference import run_core

V, B, T, E, H = 20, 3, 11, 8, 16
# the cells whose core is one of PyTorch's fused modules, which the reference cells mirror
FUSED = [c for c in CELLS if issubclass(core_class(CELLS[c]), nn.RNNBase)]


def recorded(cell: str) -> set[str]:
    """What a traced forward records per layer: the cell's gates, ``h`` and, where the state
    has it, ``c``."""
    return {"h", *CELLS[cell].gates, *CELLS[cell].state}


def make_model(cell: str, num_layers: int) -> CharLM:
    """A float64 CharLM with weights spread wider than the default init, so gates saturate."""
    torch.manual_seed(0)
    model = CharLM(V, cell, embedding_size=E, hidden_size=H, num_layers=num_layers)
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def random_hidden(cell: str, num_layers: int):
    shape = (num_layers, B, H)
    if len(CELLS[cell].state) == 2:  # (h, c)
        return torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    return torch.randn(shape, dtype=torch.float64)


def embed(model: CharLM) -> torch.Tensor:
    return model.embedding(torch.randint(0, V, (B, T)))          # (B, T, E)


@pytest.mark.parametrize("random_start", [False, True], ids=["zero-start", "random-start"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", FUSED)
@torch.no_grad()
def test_run_core_matches_fused_module(cell, num_layers, random_start):
    model = make_model(cell, num_layers)
    x = embed(model)
    hidden0 = random_hidden(cell, num_layers) if random_start else None
    want_out, want_hidden = model.core(x, hidden0)
    out, hidden, gates = run_core(model.core, x, hidden0)
    torch.testing.assert_close(out, want_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden, want_hidden, atol=1e-5, rtol=0)
    assert gates == {}


@torch.no_grad()
def test_relu_rnn_matches_fused_module():
    torch.manual_seed(0)
    core = nn.RNN(E, H, 2, nonlinearity="relu", batch_first=True).double()
    x = torch.randn(B, T, E, dtype=torch.float64)
    want_out, want_hidden = core(x)
    out, hidden, _ = run_core(core, x)
    torch.testing.assert_close(out, want_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden, want_hidden, atol=1e-5, rtol=0)


@torch.no_grad()
def test_lstm_recorded_gates_reproduce_the_cell_update():
    model = make_model("lstm", 2)
    x = embed(model)
    h0, c0 = random_hidden("lstm", 2)
    out, _, gates = run_core(model.core, x, (h0, c0), record_gates=True)
    for k, g in gates.items():
        c_prev = torch.cat([c0[k].unsqueeze(1), g["c"][:, :-1]], dim=1)   # (B, T, H)
        torch.testing.assert_close(g["c"], g["f"] * c_prev + g["i"] * g["g"])
        torch.testing.assert_close(g["h"], g["o"] * torch.tanh(g["c"]))
    torch.testing.assert_close(gates[1]["h"], out)


@pytest.mark.parametrize("random_start", [False, True], ids=["zero-start", "random-start"])
@pytest.mark.parametrize("cell", list(CELLS))
@torch.no_grad()
def test_step_and_trace_equal_the_forward_pass(cell, random_start):
    """The model's three forwards agree for every cell: one character at a time (sampling)
    and with the gates recorded (analysis) give the chunk forward's scores and state."""
    model = make_model(cell, 2)
    ids = torch.randint(0, V, (B, T))
    hidden0 = random_hidden(cell, 2) if random_start else None
    if random_start and cell in ("mingru", "minlstm"):
        hidden0 = hidden0.abs() + 0.1     # their state is positive (g keeps it so)
    want, want_hidden = model(ids, hidden0)
    traced, traced_hidden, _ = model.trace(ids, hidden0)
    hidden, steps = hidden0, []
    for t in range(T):
        logits, hidden = model.step(ids[:, t], hidden)
        steps.append(logits)
    for got, got_hidden in ((traced, traced_hidden), (torch.stack(steps, 1), hidden)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        torch.testing.assert_close(got_hidden, want_hidden, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", list(CELLS))
@torch.no_grad()
def test_recorded_gates_and_saturation(cell):
    model = make_model(cell, 2)
    _, _, gates = model.trace(torch.randint(0, V, (B, T)))
    assert set(gates) == {0, 1}
    for named in gates.values():
        assert set(named) == recorded(cell)
        assert all(a.shape == (B, T, H) for a in named.values())
    saturation = gate_saturation(gates, CELLS[cell].sigmoid_gates)
    for layer, named in saturation.items():
        assert set(named) == recorded(cell) & set(CELLS[cell].sigmoid_gates)
        for left, right in named.values():
            assert 0.0 <= left <= 1.0 and 0.0 <= right <= 1.0 and left + right <= 1.0


@pytest.mark.parametrize("core, problem", [
    (nn.LSTM(4, 5, bidirectional=True, batch_first=True), "bidirectional"),
    (nn.LSTM(4, 5, proj_size=2, batch_first=True), "proj_size"),
    (nn.GRU(4, 5, bias=False, batch_first=True), "bias=False"),
    (nn.RNN(4, 5), "batch_first=False"),
    (nn.Linear(4, 5), "needs an nn.RNN, nn.LSTM or nn.GRU"),
])
def test_unsupported_module_raises(core, problem):
    with pytest.raises(ValueError, match=problem):
        run_core(core, torch.randn(2, 3, 4))


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"x must be \(B, T, E\)"):
        run_core(nn.GRU(4, 5, batch_first=True), torch.randn(2, 3, 6))
