"""Running a tune's trials: this process's share of the study, with a line of progress after
each trial (trials done, best so far, time left), the best config rewritten at each new best,
and a clean stop on Ctrl-C or SIGTERM (the interrupted trial marked failed, the study saved).

``--trials N`` is what this process runs; ``--max-time S`` starts a trial only while a whole
trial still fits in S seconds. A resumed study given neither finishes what the command that
made it asked for: its ``--trials`` less the trials finished (complete or pruned), or the part
of its ``--max-time`` that its trials have not yet spent.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from charlm.errors import Interrupted, TuneError
from charlm.tune.results import best_trial, write_best_config
from charlm.tune.session import Session
from charlm.tune.storage import default_url, shown
from charlm.tune.trial import TrialFailed, run_trial

logger = logging.getLogger(__name__)

MAX_FAILS_IN_ROW = 5  # trials failing one after another before the tune gives up
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Share:
    """What this process runs: at most ``trials`` trials, within ``time_s`` seconds (None:
    no such limit)."""

    trials: int | None
    time_s: float | None


def share_of(session: Session, trials: int | None, max_time_s: float | None) -> Share:
    """This process's share: what the command asks, or what the study's first command asked
    and its trials have not done yet.

    Raises:
        TuneError: if ``max_time_s`` is shorter than one trial.
    """
    plan = session.plan
    if max_time_s is not None and max_time_s < plan.trial_time_s:
        raise TuneError(f"--max-time {max_time_s:g} is shorter than one trial (--trial-time "
                        f"{plan.trial_time_s:g}); give at least {plan.trial_time_s:g}")
    if trials is not None or max_time_s is not None:
        return Share(trials, max_time_s)
    done = session.study.get_trials(deepcopy=False)
    if plan.goal_trials is not None:
        return Share(max(0, plan.goal_trials - sum(t.state in FINISHED for t in done)), None)
    spent = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done
                if t.datetime_complete and t.datetime_start)
    return Share(None, max(0.0, (plan.goal_time_s or 0.0) - spent))


def run_share(session: Session, share: Share, best_path: str | Path) -> int:
    """Run this process's share of trials.

    Args:
        best_path: where the best trial's config is written, at each new best.
    Returns:
        The trials this process ran.
    Raises:
        Interrupted: after Ctrl-C or SIGTERM, the running trial marked failed, with the
            command that continues.
        TuneError: after :data:`MAX_FAILS_IN_ROW` failed trials in a row.
    """
    if share.trials == 0 or share.time_s is not None and share.time_s < session.plan.trial_time_s:
        logger.info("study %s: nothing left to run (give --trials N or --max-time S for more)",
                    session.study.study_name)
        return 0
    progress = Progress(session, share, best_path)

    def objective(trial: optuna.Trial) -> float:
        progress.current = trial.number
        return run_trial(trial, session.plan, session.study.study_name, session.val_ids)

    with _signals_interrupt() as received:
        try:
            session.study.optimize(objective, n_trials=share.trials, callbacks=[progress],
                                   catch=(TrialFailed,), gc_after_trial=True)
        except (KeyboardInterrupt, Interrupted) as exc:
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else \
                (received[0] if received else signal.SIGINT)
            raise Interrupted(_stopped(session, progress.current), int(signum)) from None
    return progress.done


def _stopped(session: Session, trial: int | None) -> str:
    """What an interrupted tune says: the trial marked failed, and how to go on."""
    name, where = session.study.study_name, session.url
    default = where == default_url(session.plan.base.train.log_dir, name)
    storage = "" if default else f" --storage {shown(where)}"
    running = f"trial {trial} marked failed; " if trial is not None else ""
    count = len(session.study.get_trials(deepcopy=False))
    return (f"stopped: {running}study {name} saved ({count} trial{'s' * (count != 1)}); "
            f"continue with: charlm tune --study {name}{storage}")


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """SIGTERM, like Ctrl-C, raises KeyboardInterrupt between trials (a trial's run stops
    cleanly on either, with its own handlers); yields the signals received."""
    received: list[int] = []

    def handler(signum, frame) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: nothing to install
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


class Progress:
    """Optuna's callback after each trial: a line of progress, the best config at a new
    best, and the stops (the time left, failures in a row)."""

    def __init__(self, session: Session, share: Share, best_path: str | Path) -> None:
        self.session, self.share, self.best_path = session, share, best_path
        self.began, self.done, self.fails_in_row = time.monotonic(), 0, 0
        self.current: int | None = None  # the trial now running
        self._announce()

    def _announce(self) -> None:
        study, plan, share = self.session.study, self.session.plan, self.share
        states = [t.state for t in study.get_trials(deepcopy=False)]
        limit = " ".join(filter(None, [
            f"{share.trials} trials" if share.trials is not None else "trials",
            f"within {_duration(share.time_s)}" if share.time_s is not None else ""]))
        logger.info("study %s (%s): %d trials so far (%d complete, %d pruned, %d failed); "
                    "running %s, %g s each, on %s; pruner %s", study.study_name,
                    shown(self.session.url), len(states), states.count(TrialState.COMPLETE),
                    states.count(TrialState.PRUNED), states.count(TrialState.FAIL), limit,
                    plan.trial_time_s, ", ".join(p.describe() for p in plan.space.params
                                                 if p.kind != "fixed") or "nothing",
                    plan.pruner)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        self.current = None
        self.fails_in_row = self.fails_in_row + 1 if trial.state == TrialState.FAIL else 0
        best = best_trial(study)
        if best is not None and best.number == trial.number:
            write_best_config(self.best_path, study, self.session.plan)
        logger.info("%s | %s | %s", _outcome(trial), _best(best), self._left())
        if self.fails_in_row >= MAX_FAILS_IN_ROW:
            raise TuneError(f"{self.fails_in_row} trials in a row failed, the last because "
                            f"{trial.user_attrs.get('error', 'of an error')}; change the space "
                            f"(the tune: section of --config) or the base config")
        if self.share.time_s is not None and self.elapsed() + self.session.plan.trial_time_s \
                > self.share.time_s:
            study.stop()  # no whole trial fits in the time left

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def _left(self) -> str:
        """How much of this process's share is left: trials, and about how long."""
        share, mean = self.share, self.elapsed() / max(self.done, 1)
        estimates = []
        if share.trials is not None:
            estimates.append((share.trials - self.done) * mean)
        if share.time_s is not None:
            estimates.append(max(0.0, share.time_s - self.elapsed()))
        trials = f"{self.done} of {share.trials} trials done" if share.trials else \
            f"{self.done} trials done"
        return f"{trials}, about {_duration(min(estimates))} left" if estimates else trials


def _outcome(trial: FrozenTrial) -> str:
    """``trial 3 complete: 1.4812 nats/char (1,953 steps, 180 s)``, ``trial 4 pruned at ...``."""
    attrs, state = trial.user_attrs, trial.state.name.lower()
    if trial.state == TrialState.FAIL:
        return f"trial {trial.number} failed: {attrs.get('error', 'see the log above')}"
    value = f"{trial.value:.4f} nats/char" if trial.value is not None else "no value"
    steps = f" ({attrs.get('steps')} steps, {attrs.get('seconds', 0):.0f} s)"
    return f"trial {trial.number} {state}: {value}{steps}"


def _best(best: FrozenTrial | None) -> str:
    return f"best {best.value:.4f} (trial {best.number})" if best else "no best yet"


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
