"""IndRNN: a vanilla RNN whose recurrent weight is a vector, so each unit recurs only on itself.

Shape legend: B batch, T time steps, E input size, H hidden size, L layers.

One layer (Li, Li, Cook, Zhu & Gao 2018, equation 2)::

    h_t = ReLU(W x_t + u * h_{t-1} + b)

with ``u`` a vector of H recurrent weights. The gradient through time is a product of
diagonals, ``dh_t/dh_{t-1} = diag(u * 1[pre_t > 0])``, so each unit's gradient vanishes
(|u| < 1) or explodes (|u| > 1) on its own, geometrically: the clearest demonstration of both.
As in the paper (section 3.1), |u| is kept at or below ``MAX_GAIN ** (1 / T_MAX)``, so no unit
can amplify a gradient more than ``MAX_GAIN``-fold over ``T_MAX`` steps; the clamp is applied in
the forward pass. ``u`` starts uniform in [0, 1) (the paper's initialisation for language
tasks).

Layers are stacked plainly (the input projection ``W`` of layer k > 0 reads layer k-1's h);
dropout applies between layers. The hidden state is ``(L, B, H)``.

References:
    Li, Li, Cook, Zhu & Gao 2018, "Independently recurrent neural network (IndRNN): building a
    longer and deeper RNN", CVPR, arXiv:1803.04831.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_GAIN, T_MAX = 2.0, 64  # |u| <= 2 ** (1/64) = 1.0109


class IndRNNCore(nn.Module):
    """L stacked IndRNN layers (module doc).

    Args:
        input_size: E.
        hidden_size: H.
        num_layers: L.
        dropout: probability between layers.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        self.inputs = nn.ModuleList(nn.Linear(input_size if k == 0 else hidden_size,
                                              hidden_size) for k in range(num_layers))
        self.recurrent = nn.ParameterList(nn.Parameter(torch.rand(hidden_size))
                                          for _ in range(num_layers))

    def u(self, k: int) -> Tensor:
        """Layer k's recurrent weights, clamped to |u| <= MAX_GAIN ** (1 / T_MAX)."""
        bound = MAX_GAIN ** (1.0 / T_MAX)
        return self.recurrent[k].clamp(-bound, bound)

    def run(self, x: Tensor, hidden: Tensor | None, record: bool
            ) -> tuple[Tensor, Tensor, dict[int, dict[str, Tensor]]]:
        """(B, T, E) -> (B, T, H) outputs, the (L, B, H) final state and, if ``record``,
        each layer's state ``h`` (its pre-activation is positive exactly where h is)."""
        finals, trace = [], {}
        for k in range(self.num_layers):
            if k > 0:
                x = F.dropout(x, self.dropout, self.training)
            wx = self.inputs[k](x)                                    # (B, T, H), one GEMM
            h = wx.new_zeros(wx.shape[0], self.hidden_size) if hidden is None else hidden[k]
            u, outs = self.u(k), []
            for t in range(wx.shape[1]):
                h = torch.relu(wx[:, t] + u * h)
                outs.append(h)
            x = torch.stack(outs, dim=1)
            finals.append(h)
            if record:
                trace[k] = {"h": x}
        return x, torch.stack(finals), trace

    def diagonal_jacobian(self, record: dict[int, dict[str, Tensor]]) -> Tensor:
        """``dh_t / dh_{t-1}`` of layer 0 at every traced step, a diagonal: (B, T, H) with
        ``u * 1[h_t > 0]`` (the module doc's product of diagonals)."""
        return self.u(0) * (record[0]["h"] > 0).to(record[0]["h"].dtype)

    def forward(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, T, E) inputs -> (B, T, H) outputs and the (L, B, H) state after step T."""
        out, hidden, _ = self.run(x, hidden, record=False)
        return out, hidden

    def step(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step, (B, E) -> (B, H)."""
        out, hidden, _ = self.run(x.unsqueeze(1), hidden, record=False)
        return out[:, 0], hidden

    def trace(self, x: Tensor, hidden: Tensor | None = None):
        """:meth:`forward` with each layer's state ``h`` recorded."""
        return self.run(x, hidden, record=True)
