"""Opening a tune's study: its name and storage, the plan the command says, settled against
the plan stored in the study, and the study made (once, whichever worker comes first) or
loaded with the plan's sampler and pruner.

A command that says what the trials train (``--data``, ``--config``, ``--set``, ``--cells``)
must say what the study's first command said (every worker runs the same command; paths and
devices may differ, the corpus is compared by its digest); a command that says none of these
(``charlm tune --study NAME``) takes the study's plan as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from charlm.config import RunConfig, build_config
from charlm.data.corpus import load_corpus
from charlm.errors import TuneError, shorten
from charlm.tune.plan import PLAN_ATTR, Plan
from charlm.tune.section import build_space, read_sections
from charlm.tune.storage import (
    default_url,
    fail_dead_trials,
    host_id,
    may_hold_studies,
    open_storage,
    shown,
)

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Request:
    """What one ``charlm tune`` command asks; None (or empty) where it does not say."""

    study: str | None = None
    storage: str | None = None
    config_files: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    data: str | None = None
    cells: str | None = None
    trial_time_s: float | None = None
    seed: int | None = None
    pruner: str | None = None
    sampler: str | None = None
    trials: int | None = None
    max_time_s: float | None = None
    device: str | None = None
    progress: bool | None = None

    @property
    def defines_base(self) -> bool:
        """The command says what the trials train (else a study's stored plan does)."""
        return bool(self.config_files or self.sets or self.data or self.cells)


@dataclass
class Session:
    """An open study and what its trials need."""

    study: optuna.Study
    plan: Plan
    url: str
    val_ids: np.ndarray | None = None  # (N,) the val split; None for a report


def base_config(request: Request) -> RunConfig:
    """The config a new study's trials start from: defaults < ``--config`` files (their
    ``tune:`` sections left to :func:`~charlm.tune.section.read_sections`) < ``--set`` <
    ``--data``, ``--device``, ``--progress``."""
    return build_config(request.config_files, request.sets,
                        {"data.corpus": request.data, "train.device": request.device,
                         "train.progress": request.progress},
                        flags={"data.corpus": "--data", "train.device": "--device",
                               "train.progress": "--progress"}, skip_sections=("tune",))


def study_name(request: Request, base: RunConfig) -> str:
    """``--study``, else ``<corpus name>-<cells>`` (``tinyshakespeare-lstm``).

    Raises:
        TuneError: for a name that cannot name a file.
    """
    name = request.study or (f"{Path(base.data.corpus.rstrip('/')).stem or 'corpus'}-"
                             f"{(request.cells or base.model.cell).replace(',', '-')}")
    if not name or len(name) > 100 or name.startswith((".", "-")) or not all(
            c.isalnum() or c in "._-" for c in name):
        raise TuneError(f"--study {shorten(name)} must be a plain name of at most 100 letters, "
                        f"digits, '.', '_' and '-' (it names the study's file and folders)")
    return name


def open_session(request: Request, report: bool = False) -> Session:
    """Open the study ``request`` names, or make it, with a plan that fits it.

    Args:
        report: only read the study (it must exist; nothing is trained or changed).
    Raises:
        TuneError: for a storage that cannot be opened, a missing study, or a command whose
            settings differ from the study's.
        ConfigError, DataError: for a bad config, space or corpus.
    """
    base = base_config(request)
    name = study_name(request, base)
    url = request.storage or default_url(base.train.log_dir, name)
    only_read = report or request.trial_time_s is None
    fresh = not may_hold_studies(url)  # a SQLite file not made yet: a new study
    if fresh and only_read:
        raise _no_study(name, url)
    early = settle_plan(request, base, None) if fresh else None  # all checked before the file
    if early:
        _check_no_old_runs(early[0], name)
    storage = open_storage(url)
    stored = stored_plan(storage, name)
    if only_read and stored is None:
        raise _no_study(name, url)
    if report:
        return Session(_load(storage, name, stored, created=False), stored, url)
    plan, val_ids = early if early and not stored else settle_plan(request, base, stored)
    created = stored is None and _create(storage, name, plan)
    if stored is None and not created:  # another worker made it meanwhile
        stored = stored_plan(storage, name)
        plan, val_ids = settle_plan(request, base, stored)
    study = _load(storage, name, plan, created)
    fail_dead_trials(study)
    return Session(study, plan, url, val_ids)


def _no_study(name: str, url: str) -> TuneError:
    return TuneError(f"no study '{name}' in {shown(url)}; start it with charlm tune --study "
                     f"{name} --trial-time SECONDS (and --data, --trials)")


def stored_plan(storage, name: str, wait_s: float = 10.0) -> Plan | None:
    """The plan stored in study ``name``, or None if there is no such study (waiting up to
    ``wait_s`` for a worker that has just made it to store its plan).

    Raises:
        TuneError: for a study that holds no charlm plan.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
        except KeyError:
            return None
        if PLAN_ATTR in attrs:
            return Plan.from_attrs(attrs[PLAN_ATTR], name)
        if time.monotonic() >= deadline:
            raise TuneError(f"study '{name}' was not made by charlm tune (it holds no plan); "
                            f"choose another --study")
        time.sleep(0.2)


def settle_plan(request: Request, base: RunConfig, stored: Plan | None
                ) -> tuple[Plan, np.ndarray]:
    """The plan this command runs, and the val split of its corpus: what the command says,
    with what it leaves unsaid taken from the stored plan; it must not differ from that.

    Raises:
        TuneError: naming what differs (the corpus is compared by its digest).
    """
    if stored is not None and not request.defines_base:
        local = {"train.device": request.device, "train.progress": request.progress}
        base = build_config(base=stored.base, options=local)
    corpus = load_corpus(base.data, progress=base.train.progress)
    plan = _plan_of(request, base, corpus, stored)
    differences = stored.differences(plan) if stored is not None else []
    if differences:
        raise TuneError(f"the study was made with other settings: {'; '.join(differences[:3])}"
                        f"; run the command that made it (every worker runs the same), or "
                        f"choose another --study")
    return plan, corpus.splits["val"]


def _plan_of(request: Request, base: RunConfig, corpus, stored: Plan | None) -> Plan:
    """The plan the command says, with what it does not say taken from ``stored`` (if any)
    or the defaults. A command that says what the trials train builds its space; one that
    does not takes the study's."""
    s = stored
    trial_time = request.trial_time_s or (s.trial_time_s if s else 0.0)  # a new one gives it
    if s is not None and not request.defines_base:
        space = s.space
    else:
        fixed = [item.partition("=")[0].strip() for item in request.sets]
        space = build_space(base, read_sections(request.config_files), fixed, request.cells,
                            trial_time, len(corpus.splits["train"]))
    seed = next(v for v in (request.seed, s.seed if s else None, base.train.seed, 0)
                if v is not None)
    goals = (s.goal_trials, s.goal_time_s) if s else (request.trials, request.max_time_s)
    return Plan(base, float(trial_time), space, int(seed),
                request.pruner or (s.pruner if s else "median"),
                request.sampler or (s.sampler if s else "tpe"), corpus.sha256, *goals)


def _create(storage, name: str, plan: Plan) -> bool:
    """Make study ``name`` with ``plan`` stored; False if another worker made it first.

    Raises:
        TuneError: as :func:`_check_no_old_runs`.
    """
    _check_no_old_runs(plan, name)
    try:
        study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], name)
    except optuna.exceptions.DuplicatedStudyError:
        return False
    storage.set_study_user_attr(study_id, PLAN_ATTR, plan.to_attrs())
    return True


def _check_no_old_runs(plan: Plan, name: str) -> None:
    """A new study's trial folders hold no runs (of an earlier study of that name).

    Raises:
        TuneError: naming the folder.
    """
    folder = Path(plan.base.train.checkpoint_dir) / "tune" / name
    if folder.is_dir() and any(folder.glob("trial-*")):
        raise TuneError(f"{folder} holds the runs of an earlier study named '{name}' (its "
                        f"database is gone); choose another --study, or move that folder")


def _load(storage, name: str, plan: Plan, created: bool) -> optuna.Study:
    """The study with this plan's sampler and pruner. The worker that made the study seeds
    its sampler with the plan's seed (a one-worker tune repeats); any other mixes in its
    host, process and the trials so far, so that two workers never draw alike."""
    seed = plan.seed
    if not created:
        count = len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
        mixed = f"{plan.seed}-{host_id()}-{os.getpid()}-{count}".encode()
        seed = int(hashlib.sha256(mixed).hexdigest()[:8], 16)
    logger.debug("sampler %s, seed %d", plan.sampler, seed)
    with warnings.catch_warnings():  # constant_liar is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = (optuna.samplers.RandomSampler(seed=seed) if plan.sampler == "random" else
                   optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                             pruner=make_pruner(plan.pruner))


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """``median``: from the third report (30% of the time) on, once 4 trials have completed,
    stop a trial whose best val loss is worse than the median of theirs at that point;
    ``halving``: successive halving with rungs at reports 1, 3 and 9, keeping the best third
    at each; ``none``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()
