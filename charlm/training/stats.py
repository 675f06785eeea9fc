"""What the loop measures between two log points, kept on the device.

Losses, gradient norms and skipped (non-finite) updates are summed into device tensors, so no
step waits for the host; they are read back only at log points.
"""

from __future__ import annotations

import logging
import time

import torch

from charlm.errors import NumericalError
from charlm.system.distributed import SINGLE, Dist

logger = logging.getLogger(__name__)


class IntervalStats:
    """Sums over one log interval: loss, gradient norm, skipped updates and their streak.

    ``eager`` (the optimizer cannot skip on the device: CPU) reads the skip flag after every
    step, so a warning names each skipped step and a streak stops training at once. Otherwise
    (fused AdamW: CUDA) the counts are read only at log points, so no step waits for the host;
    a streak then stops training at the next log point, its skipped updates having changed
    nothing.
    """

    def __init__(self, device: torch.device, eager: bool) -> None:
        self.eager = eager
        self.loss_sum = torch.zeros((), device=device)
        self.norm_sum = torch.zeros((), device=device)
        self.good = torch.zeros((), device=device)           # updates applied
        self.streak = torch.zeros((), dtype=torch.long, device=device)
        self.worst = torch.zeros_like(self.streak)           # longest streak since the check
        self.skipped = torch.zeros_like(self.streak)         # skipped since the last check
        self.steps, self.chars, self.tick = 0, 0, time.perf_counter()
        self.norms: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor, norm: torch.Tensor, ok: torch.Tensor,
            chars: int) -> None:
        """Count one step: its loss (nats/char), pre-clip norm, whether it was applied, and
        the characters it trained on (over all ranks)."""
        self.steps += 1
        self.chars += chars
        self.good += ok  # a skipped step's NaN would poison the interval's mean
        self.loss_sum += torch.where(ok, loss, 0.0)
        self.norm_sum += torch.where(ok, norm, 0.0)
        self.norms.append(torch.where(ok, norm, float("nan")))
        self.streak = torch.where(ok, 0, self.streak + 1)
        self.worst = torch.maximum(self.worst, self.streak)
        self.skipped += ~ok

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` (an evaluation) out of the chars/s figure."""
        self.tick += seconds

    def check_skips(self, state, lr: float, max_nonfinite: int, grad_clip: float) -> None:
        """Move the skip count into ``state.nonfinite_steps``, warn, and raise after
        ``max_nonfinite`` in a row.

        Raises:
            NumericalError: with the step, lr, clip setting and what to try.
        """
        count = int(self.skipped)
        if not count:
            return
        worst, streak = int(self.worst), int(self.streak)
        state.nonfinite_steps += count
        self.skipped.zero_()
        self.worst.copy_(self.streak)
        logger.warning("step %d: %s; update%s skipped, hidden state reset (%d in a row)",
                       state.step, "non-finite loss or gradient norm" if self.eager else
                       f"{count} non-finite losses or gradient norms since the last log",
                       "" if count == 1 else "s", streak)
        if worst >= max_nonfinite:
            raise NumericalError(
                f"training stopped at step {state.step}: {worst} non-finite losses or gradient "
                f"norms in a row (lr {lr:.3g}, grad_clip {grad_clip:g}); the last good "
                f"checkpoint is kept. Try a lower --lr, a --grad-clip of 1 or less, or a "
                f"shorter --seq-len")

    def read(self, dist: Dist = SINGLE) -> dict:
        """Means over the interval and chars/s (the characters :meth:`add` counted); then
        start a new interval.

        Under distributed training the loss is averaged over ranks (the norm is already the
        same everywhere).

        Returns:
            ``loss`` (nats/char), ``grad_norm`` (mean pre-clip norm), ``chars_per_s``,
            ``step_ms`` (milliseconds per step, evaluations left out) and ``grad_norms`` (the
            interval's finite pre-clip norms, a 1-D CPU tensor, or None).
        """
        good, now = max(self.good.item(), 1.0), time.perf_counter()
        loss = dist.sum_(self.loss_sum.clone()).item() / dist.world_size
        seconds = max(now - self.tick, 1e-9)
        out = {"loss": loss / good, "grad_norm": self.norm_sum.item() / good,
               "chars_per_s": self.chars / seconds,
               "step_ms": 1000.0 * seconds / max(self.steps, 1),
               "grad_norms": _finite(torch.stack(self.norms).float().cpu()) if self.norms
               else None}
        self.loss_sum.zero_(), self.norm_sum.zero_(), self.good.zero_()
        self.steps, self.chars, self.tick, self.norms = 0, 0, now, []
        return out


def _finite(values: torch.Tensor) -> torch.Tensor | None:
    values = values[torch.isfinite(values)]
    return values if len(values) else None
