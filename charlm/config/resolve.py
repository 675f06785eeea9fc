"""Resolving a run configuration: YAML files, dotted overrides, validation.

Precedence, lowest first: the dataclass defaults (identical to ``configs/default.yaml``) < a
YAML file (``--config``) < ``--set section.key=value`` < the CLI's dedicated options
(``--cell``, ``--data``, ...). Every value is checked against its field's type and range; an
unknown key, a wrong type or an out-of-range value raises :class:`ConfigError` naming the dotted
key, where the value came from and, for a misspelling, the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import codecs
import math
import os
import re
import stat
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from charlm.config.schema import SECTIONS, RunConfig, choices_of, keys
from charlm.errors import ConfigError, shorten

logger = logging.getLogger(__name__)

_RUN_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]+$")
# Names Windows cannot create as files or folders, with any extension (CON.txt too).
_WINDOWS_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?$", re.IGNORECASE)
MAX_RUN_NAME = 100  # characters; suffixes and file names are added to it
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; a megabyte can only be a mistake
MAX_YAML_DEPTH = 16  # a config is two levels deep; deeper nesting can only be a mistake


def _closest(name: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest option, or ''."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Convert ``value`` to the field type ``hint`` or raise ConfigError naming ``key``."""
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if isinstance(value, str) and optional and value.lower() in ("null", "none"):
        value = None
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} ({source}) must not be empty; expected {base.__name__}")
    bad = ConfigError(f"{key} ({source}) must be {base.__name__}, got {shorten(value)} "
                      f"of type {type(value).__name__}")
    if base is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if base is int:
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise bad
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad from None
    if base is float:
        if isinstance(value, bool):
            raise bad
        try:
            out = float(value)  # YAML 1.1 reads "1e-3" as a string; accept it as a number
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(out):
            raise ConfigError(f"{key} ({source}) is {out}; it must be a finite number")
        return out
    if not isinstance(value, str):
        raise bad
    if not value.strip():
        raise ConfigError(f"{key} ({source}) must not be an empty string")
    return value


def _check_range(key: str, value: Any, meta: Mapping[str, Any], source: str) -> None:
    """Raise ConfigError when ``value`` lies outside the field's declared range or choices."""
    if value is None:
        return
    choices = choices_of(meta)
    if choices and value not in choices:
        raise ConfigError(f"{key} ({source}) is {shorten(value)}; choose one of "
                          f"{', '.join(choices)}{_closest(str(value), choices)}")
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and (value < lo or (meta["lo_open"] and value == lo)):
        op = ">" if meta["lo_open"] else ">="
        raise ConfigError(f"{key} ({source}) is {shorten(value)}; it must be {op} {lo if isinstance(lo, int) else f'{lo:g}'}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key} ({source}) is {shorten(value)}; it must be <= {hi if isinstance(hi, int) else f'{hi:g}'}")


def _apply(cfg: RunConfig, key: str, value: Any, source: str) -> RunConfig:
    """Return ``cfg`` with dotted ``key`` (``section.name``) set to ``value``, validated."""
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"unknown config section '{section}' in '{key}' ({source}); "
                          f"sections are {', '.join(SECTIONS)}{_closest(section, SECTIONS)}")
    sub = getattr(cfg, section)
    fields = {f.name: f for f in dataclasses.fields(sub)}
    if name not in fields:
        home = [sec for sec, cls in SECTIONS.items()
                if name in {f.name for f in dataclasses.fields(cls)}]
        if home:
            raise ConfigError(f"unknown config key '{key}' ({source}): '{name}' is a key of "
                              f"the '{home[0]}' section; use {home[0]}.{name}")
        valid = [f"{section}.{n}" for n in fields]
        raise ConfigError(f"unknown config key '{key}' ({source}){_closest(key, valid)}; "
                          f"keys of '{section}' are {', '.join(fields)}")
    hint = typing.get_type_hints(type(sub))[name]
    value = _coerce(key, value, hint, source)
    _check_range(key, value, fields[name].metadata, source)
    return dataclasses.replace(cfg, **{section: dataclasses.replace(sub, **{name: value})})


def _flatten(tree: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``{'model': {'cell': 'gru'}}`` -> ``{'model.cell': 'gru'}``; sections must be mappings."""
    flat: dict[str, Any] = {}
    for section, body in tree.items():
        if not isinstance(body, Mapping):
            hint = "" if section in SECTIONS else _closest(str(section), SECTIONS)
            raise ConfigError(f"'{section}' ({source}) must be a mapping of keys, "
                              f"got {type(body).__name__}{hint}")
        for name, value in body.items():
            flat[f"{section}.{name}"] = value
    return flat


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(f"duplicate key {shorten(key)}")
        self.key, self.first, self.second = key, first, second


class _Refused(yaml.YAMLError):
    """YAML that is valid but that a config never needs: an alias, or nesting past a bound."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, except that a key given twice in one mapping is an error (YAML
    1.2 requires unique keys; PyYAML keeps the last one silently), an alias (``*name``) is
    refused (a config never needs one, and a few hundred bytes of nested aliases expand to
    gigabytes), and nesting deeper than :data:`MAX_YAML_DEPTH` is refused before the
    recursive composer and constructor could raise ``RecursionError``."""

    _depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f"it uses an alias (*{event.anchor[:40]}); write the value out "
                           f"instead", event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            raise _Refused(f"it nests deeper than {MAX_YAML_DEPTH} levels",
                           self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise _DuplicateKey(key, seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_bounded(path: Path) -> str:
    """The text of a config file, read only if it is a regular file of at most
    :data:`MAX_CONFIG_BYTES` (``/dev/zero``, a FIFO or a huge file is refused unread).

    Raises:
        ConfigError: if the file is missing, unreadable, not a regular file, too large, or
            not UTF-8.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below)
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"config file {path} is not a regular file (a device, pipe "
                                  f"or socket); give --config a YAML file")
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes; a "
                          f"config is a few hundred bytes: give --config a YAML config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; give a YAML file") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file as flat dotted keys.

    Raises:
        ConfigError: if the file is missing, unreadable, not a regular file, larger than
            :data:`MAX_CONFIG_BYTES`, not YAML, uses an alias, nests deeper than
            :data:`MAX_YAML_DEPTH`, or is not a mapping.
    """
    path = Path(path)
    text = _read_bounded(path)
    try:
        tree = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as exc:
        raise ConfigError(f"config file {path} gives {shorten(exc.key)} twice (lines "
                          f"{exc.first} and {exc.second}); the second would silently replace "
                          f"the first: merge them") from None
    except _Refused as exc:
        mark = exc.problem_mark
        raise ConfigError(f"config file {path} is refused at line {mark.line + 1}, column "
                          f"{mark.column + 1}: {exc.problem}") from None
    except ValueError:  # PyYAML's int() of a number past Python's 4300-digit limit
        raise ConfigError(f"config file {path} holds a number thousands of digits long; "
                          f"no config key takes one") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{at}: {problem}") from None
    if tree is None:
        return {}
    if not isinstance(tree, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping of sections, "
                          f"got {type(tree).__name__}")
    return _flatten(tree, str(path))


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``--set section.key=value`` items; values are read as YAML scalars.

    Raises:
        ConfigError: if an item lacks '=' or a dotted key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or "." not in key:
            raise ConfigError(f"--set {shorten(item)} must look like section.key=value, "
                              f"for example --set model.hidden_size=512")
        try:
            out[key.strip()] = (yaml.load(raw, Loader=_UniqueKeyLoader)  # noqa: S506
                                if raw.strip() else None)
        except _Refused as exc:
            raise ConfigError(f"--set {shorten(key)}: the value is refused: "
                              f"{exc.problem}") from None
        except (yaml.YAMLError, ValueError):  # ValueError: an int past Python's digit limit
            out[key.strip()] = raw
    return out


def build_config(yaml_path: str | Path | Iterable[str | Path] | None = None,
                 sets: Iterable[str] = (),
                 options: Mapping[str, Any] | None = None, base: RunConfig | None = None,
                 flags: Mapping[str, str] | None = None, skip_sections: Iterable[str] = ()
                 ) -> RunConfig:
    """Resolve a RunConfig from defaults < YAML file < ``--set`` items < dedicated options.

    Args:
        yaml_path: optional YAML file with sections data, model, optim, train, sample, or
            several, applied in order (a later file's keys win).
        sets: ``section.key=value`` strings.
        options: dotted keys from dedicated CLI options; None values are ignored.
        base: start from this config instead of the defaults (a resumed run's own config, a
            checkpoint's config that ``charlm sample`` options override).
        flags: the option each key of ``options`` came from (``{"sample.top_k": "--top-k"}``),
            named in errors; a key's schema flag, or "option", otherwise.
        skip_sections: sections of the files that another reader takes (``charlm tune``'s
            ``tune``), left out here.
    Raises:
        ConfigError: for an unknown key, a wrong type or an out-of-range value.
    """
    cfg = base or RunConfig()
    files = [] if yaml_path is None else [yaml_path] if isinstance(yaml_path, (str, Path)) \
        else list(yaml_path)
    skipped = tuple(f"{section}." for section in skip_sections)
    for path in files:
        for key, value in load_yaml(path).items():
            if not key.startswith(skipped):  # startswith(()) is False
                cfg = _apply(cfg, key, value, str(path))
    for key, value in parse_set(sets).items():
        cfg = _apply(cfg, key, value, "--set")
    named = {k.dotted: k.flag for k in keys() if k.flag} | dict(flags or {})
    for key, value in (options or {}).items():
        if value is not None:
            cfg = _apply(cfg, key, value, named.get(key, "option"))
    return validate(cfg)


def from_dict(tree: Mapping[str, Any], source: str = "checkpoint") -> RunConfig:
    """Rebuild a RunConfig from :meth:`RunConfig.to_dict` output (e.g. from a checkpoint)."""
    cfg = RunConfig()
    for key, value in _flatten(tree, source).items():
        cfg = _apply(cfg, key, value, source)
    return validate(cfg)


def validate(cfg: RunConfig) -> RunConfig:
    """Checks that span several keys.

    Raises:
        ConfigError: if the splits overlap or no stopping rule is set.
    """
    if cfg.data.train_frac + cfg.data.val_frac > 1.0 + 1e-9:
        raise ConfigError(f"data.train_frac + data.val_frac is "
                          f"{cfg.data.train_frac + cfg.data.val_frac:g}; it must be <= 1")
    if cfg.optim.min_lr > cfg.optim.lr:
        raise ConfigError(f"optim.min_lr ({cfg.optim.min_lr:g}) is above optim.lr "
                          f"({cfg.optim.lr:g}); the decay goes down to min_lr")
    _check_encoding(cfg.data.encoding)
    t = cfg.train
    if t.run_name is not None:
        _check_run_name(t.run_name)
    if t.max_steps is None and t.max_epochs is None and t.max_time is None:
        raise ConfigError("no stopping rule: set train.max_steps, train.max_epochs or "
                          "train.max_time (e.g. --max-time 300)")
    return cfg


def _check_encoding(name: str) -> None:
    """Refuse an encoding Python does not know, or one that is no text encoding (base64, hex,
    zlib, rot13 pass ``codecs.lookup`` but map bytes to bytes or str to str)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        raise ConfigError(f"data.encoding is {shorten(name)}, which Python does not know; "
                          f"pass --encoding with a text encoding such as utf-8 or "
                          f"latin-1") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ConfigError(f"data.encoding is {shorten(name)}, which is not a text encoding "
                          f"(it maps bytes to bytes or text to text); pass --encoding with a "
                          f"text encoding such as utf-8 or latin-1")


def _check_run_name(name: str) -> None:
    """A run name that is one folder name on every system.

    Raises:
        ConfigError: for a path, a reserved or a too long name.
    """
    if not _RUN_NAME.match(name):
        raise ConfigError(f"train.run_name {shorten(name)} must be a plain folder name of "
                          f"letters, digits, '.', '_' and '-' (no '/', not '.' or '..')")
    if name.startswith("-") or name == "latest":
        raise ConfigError(f"train.run_name {shorten(name)} could not be named afterwards (a "
                          f"leading '-' reads as an option, 'latest' means the newest run); choose "
                          f"another --run-name")
    if _WINDOWS_RESERVED.match(name) or name.endswith("."):
        raise ConfigError(f"train.run_name {shorten(name)} is a name Windows cannot create (a "
                          f"device name such as CON or NUL, or a trailing '.'); choose another "
                          f"--run-name")
    if len(name) > MAX_RUN_NAME:
        raise ConfigError(f"train.run_name is {len(name)} characters long; use at most "
                          f"{MAX_RUN_NAME} (--run-name)")


def dump_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML text (what ``--config`` accepts)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def changed_keys(old: RunConfig, new: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every key that differs."""
    a, b = old.to_dict(), new.to_dict()
    return {f"{sec}.{k}": (a[sec][k], b[sec][k]) for sec in a for k in a[sec]
            if a[sec][k] != b[sec][k]}


def describe_keys() -> list[tuple[str, Any, str]]:
    """``(dotted key, default, help)`` for every config key, in declaration order."""
    return [(k.dotted, k.default, k.help) for k in keys()]
