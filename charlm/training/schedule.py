"""When to stop and how fast to learn: the training budget and the learning-rate schedule.

References:
    Loshchilov & Hutter 2017, "SGDR: stochastic gradient descent with warm restarts" (cosine
    decay); Goyal et al. 2017, "Accurate, large minibatch SGD" (linear warm-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from charlm.config import OptimConfig, TrainConfig


def lr_at(cfg: OptimConfig, step: int, progress: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based) at training ``progress`` in [0, 1].

    Linear warm-up over ``warmup_steps``, times a cosine from ``lr`` down to ``min_lr`` over
    the progress of the run. Progress may be a fraction of steps or of the wall-clock budget,
    which :mod:`torch.optim.lr_scheduler` (step-indexed only) cannot express.
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule == "constant":
        return cfg.lr * warm
    p = min(max(progress, 0.0), 1.0)
    return warm * (cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * p)))


def epoch_steps(max_epochs: float, steps_per_epoch: int) -> int:
    """The step count ``max_epochs`` epochs take (rounded up)."""
    return math.ceil(max_epochs * steps_per_epoch)


@dataclass
class Budget:
    """When to stop: ``max_steps``, ``max_epochs`` or ``max_time``, whichever comes first; and
    what the learning-rate schedule follows.

    The rule: when a step limit is given (``max_steps``, or ``max_epochs`` folded into steps)
    the schedule follows steps, and a time limit only stops the run, so the same seed and
    step budget give the same run whatever the machine's speed. Only a run with a time limit
    and no step limit schedules by the clock (such a run resumes faithfully, not bit for bit).
    """

    max_steps: int | None
    max_time: float | None

    @classmethod
    def from_config(cls, cfg: TrainConfig, steps_per_epoch: int) -> "Budget":
        """Fold ``max_epochs`` into a step limit (epochs x steps per epoch, rounded up)."""
        limits = [cfg.max_steps] if cfg.max_steps else []
        if cfg.max_epochs:
            limits.append(epoch_steps(cfg.max_epochs, steps_per_epoch))
        return cls(min(limits) if limits else None, cfg.max_time)

    def progress(self, step: int, elapsed_s: float) -> float:
        """Where the schedule is, in [0, 1]: the step fraction when a step limit exists,
        else the time fraction (the class doc's rule)."""
        if self.max_steps:
            return min(step / self.max_steps, 1.0)
        if self.max_time:
            return min(elapsed_s / self.max_time, 1.0)
        return 0.0

    def done(self, step: int, elapsed_s: float) -> bool:
        """True once any limit is reached."""
        return bool((self.max_steps and step >= self.max_steps) or
                    (self.max_time and elapsed_s >= self.max_time))
