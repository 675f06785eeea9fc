"""What a study is: the config every trial starts from, each trial's time, the space, the
seed and the pruner. The command that makes a study stores its plan in the study (Optuna user
attributes), so that a resumed tune and every other worker run the same search, and a command
that would change it is refused.

A trial is an ordinary run of the base config with the trial's values, for ``trial_time_s``
seconds, under ``<checkpoint_dir>/tune/<study>/trial-<n>/`` and ``<log_dir>/tune/<study>/
trial-<n>/`` (``tensorboard --logdir runs/tune/<study>`` compares the trials in HPARAMS). Its
evaluations are the watched time points only (:mod:`charlm.tune.trial`), each on at most
:data:`EVAL_CHARS` val characters, without text samples or gate statistics, so that they
cost little of the trial's time; its score is then taken on the whole val split.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charlm.config import RunConfig, build_config, from_dict
from charlm.errors import TuneError, shorten
from charlm.tune.space import Space

logger = logging.getLogger(__name__)

PLAN_ATTR = "charlm_plan"  # the study's user attribute that holds its plan
EVAL_CHARS = 50_000  # val characters of a trial's periodic evaluations (at most)
NEVER = 10**9  # train.eval_interval of a trial: it evaluates at its watched points only
# Keys that say where a worker keeps its files or runs, not what is trained: they may
# differ between the workers of one study (the corpus is compared by its digest instead).
LOCAL_KEYS = ("data.corpus", "data.data_dir", "data.cache_dir", "train.checkpoint_dir",
              "train.log_dir", "train.device", "train.progress", "train.run_name")
PRUNERS = ("median", "halving", "none")
SAMPLERS = ("tpe", "random")


@dataclass(frozen=True)
class Plan:
    """One study's search.

    Attributes:
        base: the config every trial starts from.
        trial_time_s: each trial's training budget, seconds (evaluations included).
        space: what each trial draws.
        seed: every trial's training seed, and the sampler's.
        pruner: ``median``, ``halving`` (successive halving) or ``none``.
        sampler: ``tpe`` or ``random``.
        corpus_sha256: the digest of the corpus the study trains on.
        goal_trials: the trials the command that made the study asked for (``--trials``),
            which a bare resume finishes; None if it gave ``--max-time``.
        goal_time_s: that command's ``--max-time``, seconds, or None.
    """

    base: RunConfig
    trial_time_s: float
    space: Space
    seed: int
    pruner: str = "median"
    sampler: str = "tpe"
    corpus_sha256: str = ""
    goal_trials: int | None = None
    goal_time_s: float | None = None

    def to_attrs(self) -> dict[str, Any]:
        """The plan as a JSON-safe mapping (a study's user attribute)."""
        out = dataclasses.asdict(self) | {"base": self.base.to_dict(),
                                          "space": self.space.to_dict()}
        return json.loads(json.dumps(out))

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], study: str) -> "Plan":
        """The plan :meth:`to_attrs` stored.

        Raises:
            TuneError: if the stored plan does not read (a study another tool made).
        """
        try:
            return cls(**(attrs | {"base": from_dict(attrs["base"], f"study {study}"),
                                   "space": Space.from_dict(attrs["space"])}))
        except (KeyError, TypeError, ValueError) as exc:
            raise TuneError(f"study '{study}' holds a plan this charlm cannot read ({exc}); "
                            f"choose another --study") from None

    def trial_config(self, number: int, params: dict[str, Any], study: str) -> RunConfig:
        """The config of trial ``number``: the base with its values, run as a trial.

        Raises:
            ConfigError: if the values contradict the base (``optim.min_lr`` above a drawn
                ``optim.lr``).
        """
        cfg = build_config(base=self.base, options=params,
                           flags={key: f"trial {number}" for key in params})
        t = cfg.train
        folder = Path("tune") / study
        train = dataclasses.replace(
            t, max_time=self.trial_time_s, stop_at_step=None, seed=self.seed,
            run_name=f"trial-{number}", checkpoint_dir=str(Path(t.checkpoint_dir) / folder),
            log_dir=str(Path(t.log_dir) / folder), eval_interval=NEVER,
            eval_max_chars=min(t.eval_max_chars, EVAL_CHARS), sample_length=0, log_gates=False)
        return dataclasses.replace(cfg, train=train)

    def best_config(self, params: dict[str, Any]) -> RunConfig:
        """What ``charlm train --config`` takes to train a trial's values as a run of its
        own: the base with the values, for the trial's time, with the trial's seed."""
        cfg = build_config(base=self.base, options=params)
        return dataclasses.replace(cfg, train=dataclasses.replace(
            cfg.train, max_time=self.trial_time_s, stop_at_step=None, seed=self.seed,
            run_name=None))

    def differences(self, other: "Plan") -> list[str]:
        """What ``other`` (another command's plan) changes of this one, each said as
        ``what (this, other)``; the keys of :data:`LOCAL_KEYS` and the goals may differ."""
        mine, theirs = _flat(self.base), _flat(other.base)
        out = [f"{key} ({shorten(mine[key])} in the study, {shorten(theirs[key])} now)"
               for key in mine if key not in LOCAL_KEYS and mine[key] != theirs[key]]
        for name, option in (("trial_time_s", "--trial-time"), ("seed", "--seed"),
                             ("pruner", "--pruner"), ("sampler", "--sampler")):
            if getattr(self, name) != getattr(other, name):
                out.append(f"{option} ({getattr(self, name)} in the study, "
                           f"{getattr(other, name)} now)")
        if self.corpus_sha256 != other.corpus_sha256:
            out.append(f"the corpus (sha256 {self.corpus_sha256[:16]}... in the study, "
                       f"{other.corpus_sha256[:16]}... now)")
        return out + space_differences(self.space, other.space)


def space_differences(mine: Space, theirs: Space) -> list[str]:
    """The search space's changes, said param by param."""
    if json.dumps(mine.to_dict()) == json.dumps(theirs.to_dict()):
        return []
    a, b = [p.describe() for p in mine.params], [p.describe() for p in theirs.params]
    gone, new = [d for d in a if d not in b], [d for d in b if d not in a]
    said = "; ".join([*(f"{d} in the study" for d in gone[:2]), *(f"{d} now" for d in new[:2])])
    return [f"the search space ({said or 'the same keys in another order'})"]


def _flat(cfg: RunConfig) -> dict[str, Any]:
    """``{dotted key: value}`` of a config."""
    return {f"{section}.{key}": value for section, body in cfg.to_dict().items()
            for key, value in body.items()}
