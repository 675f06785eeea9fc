"""The classic recurrent cores: PyTorch's fused ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``
(cuDNN on a GPU, oneDNN on a CPU), each with the two variants the rest of charlm needs.

* ``forward(x, hidden)``: the fused kernel over a whole (B, T, E) chunk (training, evaluation).
* ``step(x, hidden)``: one time step, (B, E) -> (B, H), through the reference cells
  (:mod:`charlm.models.reference`). A fused call at T = 1 pays the kernel's set-up on every
  character, whatever the model's size; the same step as plain matrix products is faster at
  batch 1 (docs/performance.md, sampling) and equal within float rounding
  (tests/models/test_reference.py).
* ``trace(x, hidden)``: the whole chunk through the reference cells, recording every gate.

They subclass the torch modules, so their parameter names (and old checkpoints) are PyTorch's.

Shape legend: B batch, T time steps, E input size, H hidden size, L layers.
"""

from __future__ import annotations

import warnings

from torch import Tensor, nn

from charlm.models.reference import run_core
from charlm.models.state import Hidden


class _Stepped:
    """A fused core built as ``Core(input_size, hidden_size, num_layers, dropout)``
    (batch-first), with its single-step and traced forwards through the reference cells."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int,
                 dropout: float = 0.0) -> None:
        with warnings.catch_warnings():
            # torch warns on every construction when dropout > 0 and L == 1; the dropout
            # before the decoder still applies, so the warning says nothing useful here.
            warnings.filterwarnings("ignore", message=".*dropout option adds dropout.*")
            super().__init__(input_size, hidden_size, num_layers, batch_first=True,
                             dropout=dropout if num_layers > 1 else 0.0)

    def step(self, x: Tensor, hidden: Hidden | None = None) -> tuple[Tensor, Hidden]:
        """One time step.

        Args:
            x: (B, E) input.
            hidden: ``(L, B, H)`` state (LSTM: an ``(h, c)`` pair), or None for zeros.
        Returns:
            ``(out, hidden)``: (B, H) last layer's output and the new state.
        """
        out, hidden, _ = run_core(self, x.unsqueeze(1), hidden)
        return out[:, 0], hidden

    def trace(self, x: Tensor, hidden: Hidden | None = None
              ) -> tuple[Tensor, Hidden, dict[int, dict[str, Tensor]]]:
        """The forward pass with every gate recorded.

        Args:
            x: (B, T, E) inputs.
        Returns:
            ``(out, hidden, record)``: (B, T, H) outputs, the final state, and
            ``{layer: {name: (B, T, H)}}`` with the cell's gates (its table entry's ``gates``),
            the layer output ``h`` and, for the LSTM, the cell state ``c``.
        """
        return run_core(self, x, hidden, record_gates=True)


class RNNCore(_Stepped, nn.RNN):
    """Elman RNN, ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (Elman 1990)."""


class LSTMCore(_Stepped, nn.LSTM):
    """LSTM with a forget gate; equations in :mod:`charlm.models.reference` (Hochreiter &
    Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000)."""


class GRUCore(_Stepped, nn.GRU):
    """GRU in PyTorch's variant; equations in :mod:`charlm.models.reference` (Cho et al.
    2014)."""
