"""The search space of a tune: which config keys each trial draws, from what, and the
default space for a core and a trial's time.

A space is a list of :class:`Param`: one config key (``model.hidden_size``) drawn from a range
(int or float, on a log scale or not), drawn among choices, or fixed. A param may hold only
under a condition on a key drawn among choices (``model.cell=indrnn``): in the trials where it
holds, it replaces the key's unconditional param. Torch-free; the trial it draws from is
anything with Optuna's ``suggest_int``, ``suggest_float`` and ``suggest_categorical``.

Shape legend: none; values are config values (H hidden units, L layers, E embedding size,
B streams, T characters per step).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

from charlm.config import RunConfig, build_config, keys

logger = logging.getLogger(__name__)

SCHEMA_ORDER = [k.dotted for k in keys()]

# The keys a space may hold: every model and optim key, and the batch layout. The budget is
# --trial-time and the seed --seed; the other train keys are how a run is run, not what it is.
TUNABLE_SECTIONS = ("model", "optim")
TUNABLE_TRAIN = ("train.batch_size", "train.seq_len")


@dataclass(frozen=True)
class Param:
    """One key of a space.

    Attributes:
        key: the dotted config key.
        kind: ``int`` or ``float`` (a range), ``choice`` or ``fixed``.
        low, high: a range's ends, both included.
        log: draw the range on a log scale (``low`` > 0).
        step: a range's grid (ints: 1 when unset).
        choices: the values a ``choice`` draws among.
        value: a ``fixed`` param's value.
        when: ``(key, value)``: the param holds only in trials that drew that value.
    """

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    value: Any = None
    when: tuple[str, Any] | None = None

    @property
    def name(self) -> str:
        """The Optuna parameter name: the key, with its condition when it has one (a
        conditional range is a parameter of its own)."""
        return self.key if self.when is None else f"{self.key}|{self.when[0]}={self.when[1]}"

    def draw(self, trial) -> Any:
        """This param's value in ``trial`` (an ``optuna.Trial``)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        """``model.hidden_size 128..512 (log)``, ``model.cell lstm|gru``, ``model.dropout = 0.1``."""
        if self.kind == "fixed":
            text = f"{self.key} = {self.value}"
        elif self.kind == "choice":
            text = f"{self.key} {'|'.join(str(c) for c in self.choices)}"
        else:
            text = f"{self.key} {self.low:g}..{self.high:g}{' (log)' if self.log else ''}"
        return text if self.when is None else f"{text} when {self.when[0]}={self.when[1]}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe fields (what a study stores): those of its kind."""
        out: dict[str, Any] = {"key": self.key, "kind": self.kind}
        if self.kind in ("int", "float"):
            out |= {"low": self.low, "high": self.high, "log": self.log, "step": self.step}
        elif self.kind == "choice":
            out["choices"] = list(self.choices)
        else:
            out["value"] = self.value
        return out | ({"when": list(self.when)} if self.when else {})


@dataclass(frozen=True)
class Space:
    """A declared search space: its params, unconditional ones first."""

    params: tuple[Param, ...]

    def suggest(self, trial) -> dict[str, Any]:
        """The config values of one trial: ``{dotted key: value}``, the keys that conditions
        name drawn first, then each other key from the last of its params that holds."""
        named = {p.when[0] for p in self.params if p.when}
        values = {p.key: p.draw(trial) for p in self.params if p.when is None and p.key in named}
        for key in self.keys():
            holding = [p for p in self.params if p.key == key and (
                p.when is None or values.get(p.when[0]) == p.when[1])]
            if key not in values and holding:
                values[key] = holding[-1].draw(trial)
        return values

    def keys(self) -> list[str]:
        """Every key of the space, once, in the config schema's order."""
        return sorted({p.key for p in self.params}, key=SCHEMA_ORDER.index)

    def searched(self) -> list[str]:
        """The keys some trial draws (not fixed), in the config schema's order."""
        drawn = {p.key for p in self.params if p.kind != "fixed"}
        return [key for key in self.keys() if key in drawn]

    def to_dict(self) -> list[dict[str, Any]]:
        """What a study stores to tell its space from another."""
        return [p.to_dict() for p in self.params]

    @classmethod
    def from_dict(cls, items: Iterable[dict[str, Any]]) -> "Space":
        """The space :meth:`to_dict` stored."""
        return cls(tuple(Param(**(item | {"choices": tuple(item.get("choices", ())),
                                          "when": tuple(item["when"]) if item.get("when")
                                          else None})) for item in items))


def value_of(cfg: RunConfig, key: str) -> Any:
    """The value of dotted ``key`` in ``cfg``."""
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


def checked(base: RunConfig, key: str, value: Any, source: str) -> Any:
    """``value`` as config key ``key`` takes it (coerced: ``1e-3`` read as text is a float),
    after the config's own checks of the key, its type and its range.

    Raises:
        ConfigError: as ``charlm train`` would for the same value, naming ``source``.
    """
    cfg = build_config(base=base, options={key: value}, flags={key: source})
    return value_of(cfg, key)


def tunable(key: str) -> bool:
    """True for a key a space may hold (:data:`TUNABLE_SECTIONS`, :data:`TUNABLE_TRAIN`)."""
    return key.partition(".")[0] in TUNABLE_SECTIONS or key in TUNABLE_TRAIN
