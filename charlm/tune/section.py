"""The ``tune:`` section of ``--config`` files, read and checked, over the default space.

The run config's schema has no ``tune`` section (``charlm train`` refuses one), so it is read
here, with the config's own YAML reader (:func:`charlm.config.load_yaml`: unique keys, one-line
errors naming the file) and every value checked as the config checks it::

    tune:
      defaults: true                   # start from the default space (false: only these keys)
      model:
        cell: [lstm, gru]              # choices
        hidden_size: {low: 128, high: 512, log: true}
        dropout: 0.1                   # fixed: every trial takes it
        embedding_size: null           # not searched: the base config's value
      optim:
        lr: {low: 0.001, high: 0.02, log: true}
        warmup_steps: {low: 0, high: 400, step: 50}
      model.cell=gru:                  # conditional keys: they hold in trials that draw gru
        model:
          hidden_size: {low: 160, high: 600, log: true}

A key given here replaces its default entry (in the conditions too); several files merge in
order, a later file's keys winning; a key that ``--set`` fixes leaves the default space.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from charlm.config import RunConfig, keys, load_yaml
from charlm.config.cells import parse_cells
from charlm.errors import ConfigError, shorten
from charlm.tune.defaults import DEFAULT, default_entries
from charlm.tune.space import TUNABLE_SECTIONS, TUNABLE_TRAIN, Param, Space, checked, tunable

logger = logging.getLogger(__name__)

RANGE_FIELDS = ("low", "high", "log", "step")
Entry = tuple[str | None, str]  # (condition "key=value" or None, dotted key)


@dataclass
class Section:
    """The ``tune:`` sections of the config files, merged: each entry's spec and where it
    came from."""

    entries: dict[Entry, Any] = field(default_factory=dict)
    sources: dict[Entry, str] = field(default_factory=dict)
    defaults: bool = True


def read_sections(paths: Iterable[str | Path]) -> Section:
    """The ``tune:`` sections of ``paths``, in order (a later file's entries win).

    Raises:
        ConfigError: for a file that does not read, or a section that is not a mapping of
            sections and conditions.
    """
    out = Section()
    for path in paths:
        where = f"tune: in {path}"
        for name, body in load_yaml(path).items():
            if not name.startswith("tune."):
                continue
            name = name[len("tune."):]
            if name == "defaults":
                if not isinstance(body, bool):
                    raise ConfigError(f"defaults ({where}) must be true or false, got "
                                      f"{shorten(body)}")
                out.defaults = body
                continue
            for entry, spec in _entries(name, body, where).items():
                out.entries[entry], out.sources[entry] = spec, where
    return out


def _entries(name: str, body: Any, where: str) -> dict[Entry, Any]:
    """One top-level name of a section: a section of keys, or a condition over sections."""
    condition = name if "=" in name else None
    if condition is None and name not in (*TUNABLE_SECTIONS, "train"):
        options = [*TUNABLE_SECTIONS, "train", "defaults"]
        match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
        hint = f" (did you mean '{match[0]}'?)" if match else ""
        raise ConfigError(f"unknown key '{name}' ({where}){hint}; the tune: section takes "
                          f"model, optim, train, defaults and conditions like model.cell=gru")
    sections = body if condition else {name: body}
    if not isinstance(sections, Mapping):
        raise ConfigError(f"{name} ({where}) must be a mapping of keys, got "
                          f"{type(sections).__name__}")
    out = {}
    for section, specs in sections.items():
        if not isinstance(specs, Mapping):
            raise ConfigError(f"{f'{condition}: ' if condition else ''}{section} ({where}) "
                              f"must be a mapping of keys, got {type(specs).__name__}")
        out |= {(condition, f"{section}.{key}"): spec for key, spec in specs.items()}
    return out


def build_space(base: RunConfig, section: Section, fixed: Iterable[str], cells: str | None,
                trial_time_s: float, train_chars: int) -> Space:
    """The space of a new study: the default space for its cores and trial time, under the
    ``tune:`` section's entries, without the keys ``--set`` fixed.

    Args:
        base: the config every trial starts from.
        fixed: the keys ``--set`` gave (fixed for every trial).
        cells: ``--cells``, a comma list of the cores to draw among; None: the section's
            ``model.cell`` choices, else the base config's cell.
        trial_time_s: each trial's training time, seconds.
        train_chars: characters of the train split.
    Raises:
        ConfigError: for an unknown or unsearchable key, a bad range or choice, a condition
            that can never hold, or a key both fixed and searched.
    """
    fixed = set(fixed)
    _check_conflicts(section, fixed, cells)
    user = section.entries
    chosen = parse_cells(cells) if cells else _cells_of(base, user)
    entries = default_entries(chosen, trial_time_s, train_chars) if section.defaults else {}
    if cells:  # --cells chooses the cores whether or not the section starts from the defaults
        entries[(None, "model.cell")] = list(chosen) if len(chosen) > 1 else chosen[0]
    replaced = fixed | {key for condition, key in user if condition is None}
    entries = {e: s for e, s in entries.items() if e[1] not in replaced and e not in user} | user
    sources = {e: section.sources.get(e, DEFAULT) for e in entries}
    params = [p for e, spec in entries.items() if e[0] is None
              for p in [_param(base, e[1], spec, None, sources[e])] if p]
    params += [p for e, spec in entries.items() if e[0] is not None
               for p in [_param(base, e[1], spec, _condition(base, e[0], params, sources[e]),
                                sources[e])] if p]
    return Space(tuple(params))


def _check_conflicts(section: Section, fixed: set[str], cells: str | None) -> None:
    """A key is fixed by ``--set`` or searched by the section, not both; ``--cells`` and the
    section's ``model.cell`` likewise."""
    for (_, key), where in section.sources.items():
        if key in fixed:
            raise ConfigError(f"{key} is fixed by --set and given by the {where}; drop one "
                              f"of them")
        if key == "model.cell" and cells:
            raise ConfigError(f"--cells and the {where} both choose model.cell; drop one of "
                              f"them")
    if cells and "model.cell" in fixed:
        raise ConfigError("--cells and --set model.cell both choose the cell; drop one of them")


def _cells_of(base: RunConfig, user: Mapping[Entry, Any]) -> tuple[str, ...]:
    """The cores a space draws among: the section's ``model.cell`` choices or value, else
    the base config's cell."""
    spec = user.get((None, "model.cell"))
    if isinstance(spec, Mapping):
        spec = spec.get("choices")
    if isinstance(spec, list) and spec and all(isinstance(c, str) for c in spec):
        return tuple(spec)
    return (spec,) if isinstance(spec, str) else (base.model.cell,)


def _condition(base: RunConfig, text: str, params: list[Param], where: str
               ) -> tuple[str, Any]:
    """``key=value`` of a conditional block, checked to name an unconditional choice of the
    space and one of its values."""
    key, _, raw = text.partition("=")
    key = key.strip()
    drawn = next((p for p in params if p.key == key and p.kind == "choice"), None)
    if drawn is None:
        raise ConfigError(f"the condition {text} ({where}) can never hold: {key} is not "
                          f"drawn among choices in this space; give {key} a list of choices")
    value = checked(base, key, raw.strip(), where)
    if value not in drawn.choices:
        raise ConfigError(f"the condition {text} ({where}) can never hold: {key} is drawn "
                          f"among {', '.join(str(c) for c in drawn.choices)}")
    return key, value


def _param(base: RunConfig, key: str, spec: Any, when: tuple[str, Any] | None, where: str
           ) -> Param | None:
    """One entry as a :class:`Param` (None for ``null``: not searched), checked.

    Raises:
        ConfigError: naming the key and ``where``.
    """
    _check_key(base, key, where)
    if spec is None:
        return None
    if isinstance(spec, Mapping) and "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra:
            raise ConfigError(f"{key} ({where}) gives choices and {', '.join(sorted(extra))}; "
                              f"give either choices or a range")
        spec = spec["choices"]
    if isinstance(spec, list):
        return _choice(base, key, spec, when, where)
    if isinstance(spec, Mapping):
        return _range(base, key, spec, when, where)
    return Param(key, "fixed", value=checked(base, key, spec, where), when=when)


def _check_key(base: RunConfig, key: str, where: str) -> None:
    """The key exists (the config's own error otherwise) and a space may hold it."""
    if key not in {k.dotted for k in keys()}:
        checked(base, key, 0, where)  # raises the config's unknown-key error
    if not tunable(key):
        raise ConfigError(f"{key} ({where}) cannot be searched: a space holds the keys of "
                          f"{' and '.join(TUNABLE_SECTIONS)}, and {', '.join(TUNABLE_TRAIN)} "
                          f"(the budget is --trial-time, the seed --seed)")


def _choice(base: RunConfig, key: str, spec: list, when, where: str) -> Param:
    """Choices, each checked, none twice."""
    values = [checked(base, key, v, where) for v in spec]
    if not values or len(set(values)) < len(values):
        raise ConfigError(f"{key} ({where}) {'has no choices' if not values else 'gives a choice twice'}"
                          f"; give a list of distinct values")
    return Param(key, "choice", choices=tuple(values), when=when)


def _range(base: RunConfig, key: str, spec: Mapping, when, where: str) -> Param:
    """A range: both ends checked as values of the key, ``low`` <= ``high``, a log scale
    above 0, a step or a log scale but not both."""
    unknown = [f for f in spec if f not in RANGE_FIELDS]
    if unknown:
        match = difflib.get_close_matches(str(unknown[0]), RANGE_FIELDS, n=1, cutoff=0.5)
        hint = f" (did you mean '{match[0]}'?)" if match else ""
        raise ConfigError(f"{key} ({where}) has unknown field '{unknown[0]}'{hint}; a range "
                          f"takes low, high, log and step, or give choices")
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{key} ({where}) needs both low and high")
    low, high = checked(base, key, spec["low"], where), checked(base, key, spec["high"], where)
    kind = type(low).__name__
    if kind not in ("int", "float"):
        raise ConfigError(f"{key} ({where}) takes no range (its values are {kind}); give a "
                          f"list of choices")
    log, step = spec.get("log", False), spec.get("step")
    step = None if step is None else checked(base, key, step, where)
    _check_range(key, low, high, log, step, where)
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def _check_range(key: str, low, high, log, step, where: str) -> None:
    """The checks of a range that span its fields."""
    if low > high:
        raise ConfigError(f"{key} ({where}) has low {low} above high {high}; give low <= high")
    if not isinstance(log, bool):
        raise ConfigError(f"{key} ({where}): log must be true or false, got {shorten(log)}")
    if log and low <= 0:
        raise ConfigError(f"{key} ({where}) is on a log scale from {low}; a log range needs "
                          f"low > 0 (or drop log)")
    if log and step is not None:
        raise ConfigError(f"{key} ({where}) gives both log and step; give one of them")
    if step is not None and step <= 0:
        raise ConfigError(f"{key} ({where}): step must be above 0, got {step}")
