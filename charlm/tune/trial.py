"""One trial: an ordinary charlm run of the trial's values, watched by the study.

The run evaluates at each tenth of the trial's time (:data:`REPORTS` points, on the clock of
``train.max_time``, which counts the evaluations) and reports each val loss to the study as
step 1, 2, ... 9: the same points for every trial, whatever its speed, so that a median
pruner compares like with like and successive halving's rungs are tenths of the time. When
the pruner says the trial is losing, the run stops there as an early stop does (``last.pt``
saved, the hparams written) and the trial ends pruned. A trial that runs to its time is
scored by its final weights' val loss on the whole val split, in nats per character.

Shape legend: N characters of the val split.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import optuna

from charlm.errors import ConfigError, DataError, Interrupted, NumericalError
from charlm.evaluation.static import evaluate
from charlm.store.checkpoint import load_checkpoint
from charlm.store.folders import LAST
from charlm.store.restore import restore_model
from charlm.system.device import resolve_device
from charlm.training.loop import TrainState
from charlm.training.reporting import EvalWatch
from charlm.training.run import train_run
from charlm.tune.plan import Plan
from charlm.tune.storage import mark_worker

logger = logging.getLogger(__name__)

REPORTS = 10  # a trial's time is cut in tenths; it reports at the first nine
# Errors that come from a trial's own values (a batch layout the corpus cannot fill, a rate
# that diverges): the trial fails and the study goes on. Any other error ends the tune.
TRIAL_ERRORS = (ConfigError, DataError, NumericalError)


class TrialFailed(Exception):
    """A trial failed for a reason of its own values; its message says which."""


class TrialWatch:
    """What a trial watches of its run: evaluations at the report points, each val loss
    reported, and a stop when the study's pruner says so.

    Args:
        trial: the Optuna trial.
        trial_time_s: the trial's training time, seconds.
    """

    def __init__(self, trial: optuna.Trial, trial_time_s: float, reports: int = REPORTS
                 ) -> None:
        self.trial, self.slot_s, self.reports = trial, trial_time_s / reports, reports
        self.next = 1          # the next report point
        self.due: int | None = None   # the point the pending evaluation reports
        self.pruned: TrainState | None = None  # where the pruner stopped the run

    def eval_due(self, state: TrainState) -> bool:
        """True once per report point, at the first step past it."""
        point = int(state.elapsed_s // self.slot_s)
        if point < self.next or point >= self.reports:
            return False
        self.due, self.next = point, point + 1  # a slow step may pass a point: it is skipped
        return True

    def after_eval(self, state: TrainState) -> bool:
        """Report a watched evaluation's val loss; True stops the run (pruned)."""
        if self.due is None:
            return False
        point, self.due = self.due, None
        loss = state.last_val_loss
        self.trial.report(loss if math.isfinite(loss) else math.inf, point)
        if self.trial.should_prune():
            self.pruned = state
            return True
        return False

    def watch(self) -> EvalWatch:
        """The :class:`EvalWatch` that :func:`~charlm.training.run.train_run` takes."""
        return EvalWatch(eval_due=self.eval_due, after_eval=self.after_eval)


def run_trial(trial: optuna.Trial, plan: Plan, study: str, val_ids: np.ndarray) -> float:
    """Draw a trial's values, train its run and score it.

    Args:
        val_ids: (N,) the val split of the study's corpus.
    Returns:
        The final weights' val loss over the whole val split, nats/char.
    Raises:
        optuna.TrialPruned: when the pruner stopped the run (its checkpoints are kept).
        TrialFailed: for an error of the trial's own values (:data:`TRIAL_ERRORS`).
        Interrupted: after Ctrl-C or SIGTERM during training, once ``last.pt`` is saved.
    """
    mark_worker(trial)
    values = plan.space.suggest(trial)
    watch = TrialWatch(trial, plan.trial_time_s)
    try:
        cfg = plan.trial_config(trial.number, values, study)
        run = Path(cfg.train.checkpoint_dir) / (cfg.train.run_name or "")
        trial.set_user_attr("run", str(run))
        result = train_run(cfg, watch=watch.watch())
    except TRIAL_ERRORS as exc:
        trial.set_user_attr("error", str(exc))
        raise TrialFailed(str(exc)) from None
    except (Interrupted, KeyboardInterrupt):
        trial.set_user_attr("error", "interrupted")
        raise
    trial.set_user_attr("steps", result.steps)
    trial.set_user_attr("seconds", round(result.elapsed_s, 1))
    trial.set_user_attr("checkpoint", str(run / LAST))
    if watch.pruned is not None:
        raise optuna.TrialPruned(f"at {watch.pruned.elapsed_s:.0f} s (step "
                                 f"{watch.pruned.step}), val loss "
                                 f"{watch.pruned.last_val_loss:.4f}")
    return score(run / LAST, cfg.train.device, cfg.train.eval_batch_size, cfg.train.seq_len,
                 val_ids)


def score(path: Path, device: str, batch_size: int, seq_len: int, val_ids: np.ndarray
          ) -> float:
    """The val loss of the weights in checkpoint ``path`` over the whole split ``val_ids``
    (:func:`charlm.evaluation.static.evaluate`, every character scored once), nats/char."""
    ckpt = load_checkpoint(path)
    model, _, _ = restore_model(ckpt, resolve_device(device), source=str(path))
    loss, chars = evaluate(model, val_ids, batch_size, seq_len, max_chars=None)
    logger.info("%s: val loss %.4f nats/char over the whole val split (%d characters)",
                path, loss, chars)
    return loss
