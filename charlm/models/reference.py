"""Step-by-step reference cells that reread a fused ``nn.RNN``/``nn.LSTM``/``nn.GRU`` and expose
its gates, one time step at a time. The fused cores (:mod:`charlm.models.fused`) use them for
their single-step and traced forwards.

Shape legend: B batch, T time steps, E input size, H hidden size, L layers. Inputs are
batch-first ``(B, T, E)``; hidden state is ``(L, B, H)``, or an ``(h, c)`` pair of them for the
LSTM, exactly as the fused modules take and return it.

Equations (sigma the logistic sigmoid, * elementwise; PyTorch packs ``weight_ih_l{k}``,
``weight_hh_l{k}`` and both biases gate by gate in the order given):

LSTM, packed i, f, g, o (Hochreiter & Schmidhuber 1997; forget gate f from Gers, Schmidhuber
& Cummins 2000)::

    i = sigma(W_ii x + b_ii + W_hi h + b_hi)     f = sigma(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)      o = sigma(W_io x + b_io + W_ho h + b_ho)
    c_t = f * c_{t-1} + i * g                    h_t = o * tanh(c_t)

GRU, PyTorch's variant, packed r, z, n (Cho et al. 2014)::

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)     z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

PyTorch (like cuDNN) applies the reset gate after the hidden matmul, ``r * (W_hn h + b_hn)``;
Cho et al. 2014 and many textbooks apply it before, ``W_hn (r * h)``. The two are different
functions of the same weights, so only the PyTorch form reproduces ``nn.GRU``.

RNN (Elman 1990)::

    h_t = tanh(W_ih x + b_ih + W_hh h + b_hh)    (ReLU in place of tanh if nonlinearity='relu')

References:
    Elman 1990, "Finding structure in time". Hochreiter & Schmidhuber 1997, "Long short-term
    memory". Gers, Schmidhuber & Cummins 2000, "Learning to forget: continual prediction with
    LSTM". Cho et al. 2014, "Learning phrase representations using RNN encoder-decoder for
    statistical machine translation".
"""

from __future__ import annotations

import logging
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from charlm.models.state import Hidden

logger = logging.getLogger(__name__)

_KINDS = MappingProxyType({"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"})
_ACTIVATIONS = MappingProxyType({"tanh": torch.tanh, "relu": torch.relu})


def lstm_step(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
              b_hh: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One LSTM time step with PyTorch's weight layout.

    Args:
        x: (B, E) input at step t.
        h, c: (B, H) hidden and cell state after step t-1.
        w_ih: (4H, E) and w_hh: (4H, H) weights, b_ih and b_hh: (4H,) biases, packed i, f, g, o.
    Returns:
        ``(h, c, gates)``: (B, H) new hidden and cell state, and ``gates`` mapping 'i', 'f',
        'g', 'o' to their (B, H) post-activation values.
    References:
        Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000 (forget gate).
    """
    pre = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)     # (B, 4H)
    i, f, g, o = pre.chunk(4, dim=1)                              # 4 x (B, H)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c, {"i": i, "f": f, "g": g, "o": o}


def gru_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
             ) -> tuple[Tensor, dict[str, Tensor]]:
    """One GRU time step in PyTorch's variant (reset gate after the hidden matmul).

    Args:
        x: (B, E) input at step t.
        h: (B, H) hidden state after step t-1.
        w_ih: (3H, E) and w_hh: (3H, H) weights, b_ih and b_hh: (3H,) biases, packed r, z, n.
    Returns:
        ``(h, gates)``: (B, H) new hidden state, and ``gates`` mapping 'r', 'z', 'n' to their
        (B, H) post-activation values.
    References:
        Cho et al. 2014 (who put r before the matmul: W_hn (r * h)).
    """
    x_r, x_z, x_n = F.linear(x, w_ih, b_ih).chunk(3, dim=1)     # 3 x (B, H)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=1)     # 3 x (B, H)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, {"r": r, "z": z, "n": n}


def rnn_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
             nonlinearity: str = "tanh") -> tuple[Tensor, dict[str, Tensor]]:
    """One Elman RNN time step.

    Args:
        x: (B, E) input at step t.
        h: (B, H) hidden state after step t-1.
        w_ih: (H, E) and w_hh: (H, H) weights, b_ih and b_hh: (H,) biases.
        nonlinearity: 'tanh' (the default, as in ``nn.RNN``) or 'relu'.
    Returns:
        ``(h, gates)``: (B, H) new hidden state and an empty dict (the RNN has no gates; the
        dict keeps the return uniform with :func:`gru_step`).
    Raises:
        ValueError: for another nonlinearity.
    References:
        Elman 1990.
    """
    if nonlinearity not in _ACTIVATIONS:
        raise ValueError(f"unknown nonlinearity '{nonlinearity}'; choose tanh or relu")
    return _ACTIVATIONS[nonlinearity](F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)), {}


def _cell_kind(core: nn.Module, x: Tensor) -> str:
    """``lstm``, ``gru`` or ``rnn`` for ``core``, after checking run_core can mirror it."""
    kind = _KINDS.get(getattr(core, "mode", None)) if isinstance(core, nn.RNNBase) else None
    if kind is None:
        raise ValueError(f"run_core needs an nn.RNN, nn.LSTM or nn.GRU, not {type(core).__name__}")
    problems = [text for bad, text in (
        (core.bidirectional, "bidirectional=True"),
        (getattr(core, "proj_size", 0) > 0, f"proj_size={getattr(core, 'proj_size', 0)}"),
        (not core.bias, "bias=False"),
        (not core.batch_first, "batch_first=False")) if bad]
    if problems:
        raise ValueError(f"run_core does not support {type(core).__name__} with "
                         f"{', '.join(problems)}; it mirrors unidirectional, batch_first cores "
                         f"with biases and no projection")
    if x.dim() != 3 or x.shape[1] == 0 or x.shape[2] != core.input_size:
        raise ValueError(f"x must be (B, T, E) with T >= 1 and E = {core.input_size}, "
                         f"got {tuple(x.shape)}")
    return kind


def _run_layer(core: nn.Module, kind: str, k: int, x: Tensor, h: Tensor, c: Tensor | None,
               record: bool) -> tuple[Tensor, Tensor, Tensor | None, dict[str, Tensor]]:
    """Layer ``k`` over all T steps: (B, T, E or H) in -> (B, T, H) out, final h and c, and the
    recorded (B, T, H) gates plus 'h' (and 'c' for the LSTM) when ``record``."""
    weights = [getattr(core, f"{name}_l{k}")
               for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    outs, trace = [], []
    for t in range(x.shape[1]):
        if kind == "lstm":
            h, c, gates = lstm_step(x[:, t], h, c, *weights)
            gates["c"] = c
        elif kind == "gru":
            h, gates = gru_step(x[:, t], h, *weights)
        else:
            h, gates = rnn_step(x[:, t], h, *weights, nonlinearity=core.nonlinearity)
        outs.append(h)
        if record:
            trace.append({**gates, "h": h})
    if not record:
        return torch.stack(outs, 1), h, c, {}
    recorded = {name: torch.stack([s[name] for s in trace], 1) for name in trace[0]}  # (B, T, H)
    return torch.stack(outs, 1), h, c, recorded


def run_core(core: nn.Module, x: Tensor, hidden: Hidden | None = None, record_gates: bool = False
             ) -> tuple[Tensor, Hidden, dict[int, dict[str, Tensor]]]:
    """Run a fused recurrent module step by step with its own parameters.

    Between layers, dropout ``core.dropout`` applies as in the fused module (only while
    ``core.training``); its masks differ from the fused kernel's, so compare in eval mode.

    Args:
        core: an ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` (any L, tanh or relu), batch_first,
            unidirectional, with biases and (LSTM) no projection.
        x: (B, T, E) inputs, T >= 1.
        hidden: ``(L, B, H)`` initial state (LSTM: an ``(h, c)`` pair), or None for zeros.
        record_gates: whether to keep every step's gates.
    Returns:
        ``(out, hidden, gates)``: (B, T, H) last-layer outputs; the final state in the format of
        ``hidden``; and, if ``record_gates``, ``{layer: {name: (B, T, H)}}`` with the cell's gates
        ('i', 'f', 'g', 'o' and cell state 'c' for the LSTM; 'r', 'z', 'n' for the GRU) and
        the layer's output 'h', else ``{}``.
    Raises:
        ValueError: for an unsupported module or a badly shaped ``x``.
    """
    kind = _cell_kind(core, x)
    B, L, H = x.shape[0], core.num_layers, core.hidden_size
    if hidden is None:
        zeros = x.new_zeros(L, B, H)
        hidden = (zeros, zeros) if kind == "lstm" else zeros
    h0, c0 = hidden if kind == "lstm" else (hidden, None)
    layer_in, final_h, final_c, gates = x, [], [], {}
    for k in range(L):
        if k > 0:
            layer_in = F.dropout(layer_in, core.dropout, core.training)
        layer_in, h, c, recorded = _run_layer(core, kind, k, layer_in, h0[k],
                                              None if c0 is None else c0[k], record_gates)
        final_h.append(h)
        final_c.append(c)
        if record_gates:
            gates[k] = recorded
    h_n = torch.stack(final_h)                                    # (L, B, H)
    final = (h_n, torch.stack(final_c)) if kind == "lstm" else h_n
    return layer_in, final, gates
