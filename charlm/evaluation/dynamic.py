"""Dynamic evaluation: score a split in order, adapting the weights to the text already scored.

The split is read as one stream (batch 1) from a zero state and cut into segments
``s_1, s_2, ...`` of ``n`` targets. Each segment is scored first, with the weights as they
are, and only then used for one gradient step, so no character is ever seen before it is
predicted; the hidden state is carried from segment to segment (detached). Dropout is off
throughout. The weights are put back to the trained ones at the end.

Update rules, with ``θ_g`` the trained weights, ``θ`` the adapted ones and ``∇L(s_i)`` the
gradient of segment ``s_i``'s mean loss (nats/char) at ``θ``:

* ``sgd``: ``θ ← θ − η ∇L(s_i) + λ (θ_g − θ)``: stochastic gradient descent with the decay
  toward the trained weights ("global prior"); ``λ = 0`` is the plain dynamic evaluation of
  Mikolov et al. 2010.
* ``rms``: ``θ ← θ − η ∇L(s_i) / (√MS_g + ε) + λ r ⊙ (θ_g − θ)`` with
  ``r = √MS_g / mean(√MS_g)``: each weight's step is divided by the root mean square of its
  gradients on training text, and weights whose gradients are large decay back faster.
  ``λ r`` is clipped at 1 so that the decay never overshoots ``θ_g`` (as the authors' code
  does), and ``mean`` is over every weight of the model.

``MS_g``, the mean squared gradient per weight, is an approximation of the paper's: the paper
averages over the whole training set; here it is the mean over the first ``stat_chunks``
(default 50) segments of length ``n`` of ``stat_streams`` (default 16) training streams laid
out as in training (so 40,000 characters spread across the train split for n = 50), each
gradient that of a batch's mean loss, the state carried between chunks.

Shape legend: n segment length, V vocab size. Losses in nats/char (nats/byte for a byte model).

References:
    Krause, Kahembwe, Murray & Renals 2018, "Dynamic evaluation of neural sequence models",
    ICML, arXiv:1709.07432, Section 5 (segments, the global prior, the RMS-normalised rule and
    ``MS_g``). Mikolov et al. 2010, "Recurrent neural network based language model".
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from charlm.data.layout import TBPTTBatches
from charlm.errors import DataError
from charlm.evaluation.loss import loss_fn
from charlm.evaluation.static import scorable
from charlm.models.lm import CharLM, eval_mode
from charlm.models.state import detach_hidden

logger = logging.getLogger(__name__)

METHODS = ("sgd", "rms")
# (η, λ) per method when not given: starting points, not tuned values; tune both on the val
# split (scripts/dynamic_eval.py) and report the test split. rms: the authors' code's defaults
# (η 5e-5, λ 0.002 at n = 5) scaled linearly with n to n = 50, as their grid search scales
# them. sgd: the best of a coarse grid on a small tiny-shakespeare model.
DEFAULTS = {"sgd": (0.1, 0.0), "rms": (5e-4, 0.02)}
SEQ_LEN = 50


@dataclass(frozen=True)
class DynamicSettings:
    """The protocol's hyperparameters.

    Attributes:
        method: ``sgd`` or ``rms`` (module doc).
        lr: η, the step size (> 0).
        decay: λ in [0, 1], the pull toward the trained weights per segment.
        seq_len: n, targets per segment (one update each).
        epsilon: ε of the rms rule (the authors' code uses 2e-5).
        stat_streams: training streams for ``MS_g`` (rms only).
        stat_chunks: training segments per stream for ``MS_g`` (rms only).
    """

    method: str = "rms"
    lr: float = DEFAULTS["rms"][0]
    decay: float = DEFAULTS["rms"][1]
    seq_len: int = SEQ_LEN
    epsilon: float = 2e-5
    stat_streams: int = 16
    stat_chunks: int = 50

    def __post_init__(self) -> None:
        if self.method not in METHODS or not self.lr > 0 or not 0 <= self.decay <= 1 \
                or self.seq_len < 1:
            raise ValueError(f"invalid dynamic evaluation settings {self}: method one of "
                             f"{METHODS}, lr > 0, decay in [0, 1], seq_len >= 1")

    def to_dict(self) -> dict:
        """The settings as a plain dict (for a JSON report)."""
        return asdict(self)


@dataclass(frozen=True)
class DynamicResult:
    """What :func:`dynamic_evaluate` measured.

    Attributes:
        loss_nats: mean nats/char over every target of the split.
        chars: targets scored (N - 1).
        segment_nats: (segments,) float64 summed nats of each segment, scored before the
            update on it.
    """

    loss_nats: float
    chars: int
    segment_nats: np.ndarray


def dynamic_evaluate(model: CharLM, ids: np.ndarray, settings: DynamicSettings,
                     train_ids: np.ndarray | None = None, max_chars: int | None = None
                     ) -> DynamicResult:
    """Dynamic evaluation of a split (module doc); the model's weights are restored after.

    Args:
        model: the plain module; its parameters must require gradients.
        ids: (N,) encoded split (an array or a memory map).
        settings: method and hyperparameters.
        train_ids: (M,) the train split, for ``MS_g`` (needed by ``rms`` only).
        max_chars: score only the first ``max_chars`` targets; None scores all.
    Returns:
        The mean loss in nats/char, the number of targets and each segment's nats.
    Raises:
        DataError: if the split has fewer than 2 ids, or ``rms`` lacks training text.
    """
    ids = scorable(ids if max_chars is None else ids[:max_chars + 1])
    device = next(model.parameters()).device
    batches = TBPTTBatches(ids, 1, settings.seq_len, device)   # one stream, every target once
    sums = torch.zeros(batches.num_chunks, dtype=torch.float64, device=device)
    with eval_mode(model), torch.enable_grad():
        adapt = _Adaptation(model, settings, train_ids)
        try:
            hidden = None
            for j in range(batches.num_chunks):
                x, y = batches.chunk(j)                         # (1, n) each
                logits, hidden = model(x, hidden)               # (1, n, V)
                loss = loss_fn(logits, y, reduction="sum")
                sums[j] = loss.detach()                         # scored before the update
                if j + 1 < batches.num_chunks:                  # nothing is left to adapt to
                    adapt.step(loss / y.numel())
                hidden = detach_hidden(hidden)
        finally:
            adapt.restore()
    segment_nats = sums.cpu().numpy()
    return DynamicResult(float(segment_nats.sum()) / (len(ids) - 1), len(ids) - 1,
                         segment_nats)


class _Adaptation:
    """The adapted weights' updates (module doc) and their way back to the trained ones."""

    def __init__(self, model: CharLM, settings: DynamicSettings,
                 train_ids: np.ndarray | None) -> None:
        self.model, self.lr = model, settings.lr
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.trained = [p.detach().clone() for p in self.params]   # θ_g
        if settings.method == "sgd":
            self.scale = [None] * len(self.params)
            self.pull = [settings.decay or None] * len(self.params)
            return
        rms = [ms.sqrt() for ms in gradient_statistics(model, train_ids, settings)]
        mean = torch.cat([r.flatten() for r in rms]).mean().clamp_min(1e-30)
        self.scale = [1 / (r + settings.epsilon) for r in rms]
        self.pull = [(settings.decay * r / mean).clamp(max=1.0) if settings.decay else None
                     for r in rms]

    def step(self, loss: torch.Tensor) -> None:
        """One update of every weight from the gradient of ``loss`` (a segment's mean)."""
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p, p0, scale, pull in zip(self.params, self.trained, self.scale, self.pull):
                decay = None if pull is None else (p0 - p).mul_(pull)  # from θ before the step
                if p.grad is not None:
                    p.add_(p.grad if scale is None else p.grad * scale, alpha=-self.lr)
                if decay is not None:
                    p.add_(decay)

    def restore(self) -> None:
        """Put the trained weights back and drop the gradients."""
        self.model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p, p0 in zip(self.params, self.trained):
                p.copy_(p0)


def gradient_statistics(model: CharLM, train_ids: np.ndarray | None,
                        settings: DynamicSettings) -> list[torch.Tensor]:
    """``MS_g``: each weight's mean squared gradient on training text (module doc).

    Args:
        train_ids: (M,) the train split.
    Returns:
        One tensor per trainable parameter, its shape, in (nats/char)^2 per unit weight^2.
    Raises:
        DataError: if there is no training text (fewer than ``seq_len + 1`` ids).
    """
    n, have = settings.seq_len, 0 if train_ids is None else len(train_ids)
    if have < n + 1:
        raise DataError(f"the rms rule of dynamic evaluation estimates gradient statistics on "
                        f"the train split, which has {have} characters (it needs {n + 1}); use "
                        f"--dynamic-method sgd")
    B = max(1, min(settings.stat_streams, (len(train_ids) - 1) // n))
    batches = TBPTTBatches(train_ids, B, n, next(model.parameters()).device)
    chunks = min(settings.stat_chunks, batches.num_chunks)
    params = [p for p in model.parameters() if p.requires_grad]
    ms = [torch.zeros_like(p) for p in params]
    hidden = None
    with eval_mode(model), torch.enable_grad():
        for j in range(chunks):
            x, y = batches.chunk(j)                             # (B, n)
            logits, hidden = model(x, hidden)
            model.zero_grad(set_to_none=True)
            loss_fn(logits, y).backward()
            for m, p in zip(ms, params):
                if p.grad is not None:
                    m.add_(p.grad.square())
            hidden = detach_hidden(hidden)
    model.zero_grad(set_to_none=True)
    return [m / chunks for m in ms]
