"""minGRU and minLSTM: gated linear recurrences whose gates see only the input, so training
computes every time step at once and sampling still runs one step at a time.

Shape legend: B batch, T time steps, E input size, H hidden size (the residual width), L layers.

One layer's recurrence (Feng et al. 2024, sections 3.1 and 3.2)::

    minGRU:   z_t = sigma(W_z x_t),  h~_t = g(W_h x_t),  h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
    minLSTM:  f_t = sigma(W_f x_t),  i_t = sigma(W_i x_t),  h~_t = g(W_h x_t)
              f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
              h_t = f'_t * h_{t-1} + i'_t * h~_t

Both are ``h_t = a_t * h_{t-1} + b_t`` with ``a_t, b_t`` known for all t before the scan. The
paper's g (``x + 0.5`` for x >= 0, ``sigmoid(x)`` below) keeps h~ and therefore h positive, so
the scan can run in log space: ``log h_t = a*_t + logcumsumexp(log b - a*)_t`` with
``a*_t = sum_{s <= t} log a_s`` (Heinsen 2023), stable where a plain cumulative product of the
a_t would underflow.

Stacking (the paper's language models, appendix C): each layer is a pre-norm residual block,
``x = x + rec(LN(x))`` then ``x = x + MLP(LN(x))`` with a two-layer MLP of width ``2H``, so that
depth trains like a transformer's; an input projection maps E to H and a final LayerNorm feeds
the decoder. The hidden state is the recurrence's ``h`` of every layer, ``(L, B, H)``, carried
across TBPTT chunks like any other core's.

References:
    Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs all we needed?",
    arXiv:2410.01201. Heinsen 2023, "Efficient parallelization of a ubiquitous sequential
    computation", arXiv:2311.06281 (the log-space scan).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MLP_RATIO = 2


def g(x: Tensor) -> Tensor:
    """The paper's positive activation: ``x + 0.5`` for x >= 0, ``sigmoid(x)`` below."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """``log g(x)``, computed without forming g(x) where it is tiny."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor | None) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` for all t at once, in log space (Heinsen 2023).

    Args:
        log_a: (B, T, H) log coefficients, <= 0.
        log_b: (B, T, H) log values (b_t > 0).
        h0: (B, H) positive state before step 1, or None for zeros.
    Returns:
        (B, T, H) states h_1..h_T.
    """
    a_star = torch.cumsum(log_a, dim=1)                                   # (B, T, H)
    terms = log_b - a_star
    if h0 is not None:
        terms = torch.cat([torch.log(h0).unsqueeze(1), terms], dim=1)    # (B, T+1, H)
        a_star = F.pad(a_star, (0, 0, 1, 0))
    return torch.exp(a_star + torch.logcumsumexp(terms, dim=1))[:, -log_a.shape[1]:]


def scan_sequential(a: Tensor, b: Tensor, h0: Tensor | None) -> Tensor:
    """The same recurrence one step at a time (the reference, and sampling's path).

    Args:
        a, b: (B, T, H) coefficients and values.
        h0: (B, H) state before step 1, or None for zeros.
    Returns:
        (B, T, H) states h_1..h_T.
    """
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


class _LinearScan(torch.autograd.Function):
    """``h_t = a_t * h_{t-1} + b_t`` one step at a time, with a hand-written backward, itself
    a linear recurrence run backwards: ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, ``dL/db_t = g_t``,
    ``dL/da_t = g_t h_{t-1}``. Autograd would record two operations per step; this records
    none, and on a CPU it runs 6x faster than the log-space scan (13.8 against 82.8 ms for
    one layer's forward and backward at B 32, T 64, H 512 on this project's 2-core CPU)."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h, prev = torch.empty_like(b), h0
        for t in range(a.shape[1]):
            prev = torch.addcmul(b[:, t], a[:, t], prev)
            h[:, t] = prev
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, h, h0 = ctx.saved_tensors
        grad_b, g = torch.empty_like(grad_h), grad_h[:, -1]
        grad_b[:, -1] = g
        for t in range(a.shape[1] - 2, -1, -1):
            g = torch.addcmul(grad_h[:, t], a[:, t + 1], g)
            grad_b[:, t] = g
        before = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1)            # h_{t-1}
        return grad_b * before, grad_b, a[:, 0] * grad_b[:, 0]


def scan_linear(a: Tensor, b: Tensor, h0: Tensor | None) -> Tensor:
    """:func:`scan_sequential`'s result, fast to train on a CPU (:class:`_LinearScan`).

    Args:
        a, b: (B, T, H) coefficients and values.
        h0: (B, H) state before step 1, or None for zeros.
    Returns:
        (B, T, H) states h_1..h_T.
    """
    return _LinearScan.apply(a, b, torch.zeros_like(b[:, 0]) if h0 is None else h0)


class MinRecurrence(nn.Module):
    """One minGRU or minLSTM recurrence, (B, T, H) -> (B, T, H).

    Args:
        size: H.
        kind: ``mingru`` or ``minlstm``.
    """

    def __init__(self, size: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.gates = nn.Linear(size, (2 if kind == "mingru" else 3) * size)

    def log_coefficients(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``(log a, log b, gates)`` of the recurrence for inputs (B, T, H); the gates are
        minGRU's ``z`` or minLSTM's normalised ``f`` and ``i``, (B, T, H) each."""
        if self.kind == "mingru":
            k_z, k_h = self.gates(x).chunk(2, dim=-1)
            log_z, log_1mz = -F.softplus(-k_z), -F.softplus(k_z)          # log z, log(1 - z)
            return log_1mz, log_z + log_g(k_h), {"z": log_z.exp()}
        k_f, k_i, k_h = self.gates(x).chunk(3, dim=-1)
        diff = F.softplus(-k_f) - F.softplus(-k_i)       # log(f'/i') = log f - log i
        log_f, log_i = -F.softplus(diff), -F.softplus(-diff)              # log f', log i'
        return log_f, log_i + log_g(k_h), {"f": log_f.exp(), "i": log_i.exp()}

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``(a, b, gates)`` as :meth:`log_coefficients`, computed without logs."""
        if self.kind == "mingru":
            k_z, k_h = self.gates(x).chunk(2, dim=-1)
            z = torch.sigmoid(k_z)
            return 1 - z, z * g(k_h), {"z": z}
        k_f, k_i, k_h = self.gates(x).chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        f, i = f / (f + i), i / (f + i)
        return f, i * g(k_h), {"f": f, "i": i}

    def forward(self, x: Tensor, h0: Tensor | None = None, parallel: bool = True
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """States h_1..h_T (B, T, H) and the gates.

        ``parallel``: all steps at once, by the log-space scan on a GPU (few, large kernels)
        and by :func:`scan_linear` on a CPU (fewer passes over memory; docs/cores.md measures both);
        otherwise step by step with autograd recording each step (sampling's one step).
        """
        # the scan runs in float32 at least: bfloat16 cumulative sums lose the small terms
        wide = torch.promote_types(x.dtype, torch.float32)
        h0 = None if h0 is None else h0.to(wide)
        if parallel and x.device.type != "cpu":
            log_a, log_b, named = self.log_coefficients(x)
            return scan_log(log_a.to(wide), log_b.to(wide), h0), named
        a, b, named = self.coefficients(x)
        scan = scan_linear if parallel else scan_sequential
        return scan(a.to(wide), b.to(wide), h0), named


class MinBlock(nn.Module):
    """``x + rec(LN(x))``, then ``x + MLP(LN(x))``: one pre-norm residual layer."""

    def __init__(self, size: int, kind: str, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(size), nn.LayerNorm(size)
        self.rec = MinRecurrence(size, kind)
        self.mlp = nn.Sequential(nn.Linear(size, MLP_RATIO * size), nn.GELU(),
                                 nn.Linear(MLP_RATIO * size, size))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, h0: Tensor | None, parallel: bool
                ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(B, T, H) -> (B, T, H) outputs, (B, T, H) recurrence states and the gates."""
        h, named = self.rec(self.norm1(x), h0, parallel)
        x = x + self.drop(h)
        return x + self.drop(self.mlp(self.norm2(x))), h, named


class _MinStack(nn.Module):
    """L residual minGRU/minLSTM blocks over an input projection (module doc)."""

    kind = "mingru"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.proj = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList(MinBlock(hidden_size, self.kind, dropout)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_size)

    def run(self, x: Tensor, hidden: Tensor | None, parallel: bool
            ) -> tuple[Tensor, Tensor, dict[int, dict[str, Tensor]]]:
        """(B, T, E) -> (B, T, H) outputs, the (L, B, H) final state and every layer's
        record: its gates and its recurrence state ``h``."""
        x, finals, record = self.proj(x), [], {}
        for k, block in enumerate(self.blocks):
            x, h, named = block(x, None if hidden is None else hidden[k], parallel)
            finals.append(h[:, -1])
            record[k] = {**named, "h": h}
        return self.norm(x), torch.stack(finals), record

    def forward(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, T, E) inputs -> (B, T, H) outputs and the (L, B, H) state after step T."""
        out, hidden, _ = self.run(x, hidden, parallel=True)
        return out, hidden

    def step(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step, (B, E) -> (B, H), by the sequential recurrence."""
        out, hidden, _ = self.run(x.unsqueeze(1), hidden, parallel=False)
        return out[:, 0], hidden

    def trace(self, x: Tensor, hidden: Tensor | None = None):
        """:meth:`forward` with each layer's gates and recurrence state ``h`` recorded."""
        return self.run(x, hidden, parallel=True)

    def diagonal_jacobian(self, record: dict[int, dict[str, Tensor]]) -> Tensor:
        """``dh_t / dh_{t-1}`` of layer 0's recurrence at every traced step, a diagonal:
        (B, T, H) holding ``1 - z_t`` (minGRU) or ``f'_t`` (minLSTM), since the gates see only
        the input."""
        gates = record[0]
        return 1 - gates["z"] if self.kind == "mingru" else gates["f"]


class MinGRUCore(_MinStack):
    """minGRU blocks (Feng et al. 2024, section 3.1)."""

    kind = "mingru"


class MinLSTMCore(_MinStack):
    """minLSTM blocks (Feng et al. 2024, section 3.2)."""

    kind = "minlstm"
