"""Training: one update (:mod:`.step`), the budget and learning-rate schedule
(:mod:`.schedule`), per-interval statistics (:mod:`.stats`) and the truncated-BPTT loop
(:mod:`.loop`)."""

from charlm.training.loop import Hooks, TrainState, fit
from charlm.training.schedule import Budget, epoch_steps, lr_at
from charlm.training.step import make_optimizer, optim_lr, train_step

__all__ = ["Budget", "Hooks", "TrainState", "epoch_steps", "fit", "lr_at", "make_optimizer",
           "optim_lr", "train_step"]
