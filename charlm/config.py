"""Typed run configuration: frozen dataclasses, YAML files, dotted overrides, validation.

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
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import yaml

from charlm.errors import CharLMError

logger = logging.getLogger(__name__)

CELL_NAMES = ("rnn", "lstm", "gru")
_RUN_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]+$")  # the keys of charlm.models.CELLS, kept torch-free here


class ConfigError(CharLMError):
    """A configuration key, type or value is invalid; the message names the dotted key."""


def _field(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, choices: Iterable[str] | None = None) -> Any:
    """A dataclass field whose metadata carries its help text and allowed range."""
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open,
            "choices": tuple(choices) if choices else None}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it is split (contiguous train / val / test)."""

    corpus: str = _field("pystdlib", "text file, directory of text files, or named corpus "
                         "(pystdlib, tinyshakespeare)")
    data_dir: str = _field("data", "folder for downloaded named corpora "
                           "(tinyshakespeare/input.txt)")
    unit: str = _field("char", "what one id stands for: char (a Unicode character) or byte "
                       "(vocabulary of 256, any language or encoding)", choices=("char", "byte"))
    encoding: str = _field("utf-8", "text encoding of corpus files (unit char)")
    errors: str = _field("strict", "undecodable bytes: strict (error), replace (U+FFFD) or "
                         "ignore (drop)", choices=("strict", "replace", "ignore"))
    cache_dir: str = _field("data/cache", "folder for encoded corpora (memory-mapped ids, "
                            "reused while the corpus is unchanged)")
    train_frac: float = _field(0.9, "fraction of the corpus, from its start, used to train",
                               lo=0.0, hi=1.0, lo_open=True)
    val_frac: float = _field(0.05, "fraction after the train split used for validation; the "
                             "rest is the test split", lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True)
class ModelConfig:
    """Embedding -> recurrent core -> dropout -> linear decoder (see charlm.models)."""

    cell: str = _field("lstm", "recurrent core", choices=CELL_NAMES)
    embedding_size: int = _field(64, "character embedding size E", lo=1)
    hidden_size: int = _field(256, "hidden units per layer H", lo=1)
    num_layers: int = _field(2, "stacked recurrent layers L", lo=1)
    dropout: float = _field(0.0, "dropout between layers and before the decoder", lo=0.0, hi=0.99)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, and global-norm gradient clipping."""

    lr: float = _field(5e-3, "peak learning rate", lo=0.0, hi=10.0, lo_open=True)
    min_lr: float = _field(5e-5, "learning rate at the end of the cosine decay (<= lr)",
                           lo=0.0, hi=10.0)
    weight_decay: float = _field(0.0, "AdamW decoupled weight decay", lo=0.0)
    beta1: float = _field(0.9, "Adam beta1", lo=0.0, hi=0.9999)
    beta2: float = _field(0.99, "Adam beta2", lo=0.0, hi=0.99999)
    warmup_steps: int = _field(100, "linear warm-up steps", lo=0)
    schedule: str = _field("cosine", "learning-rate decay after warm-up",
                           choices=("cosine", "constant"))
    grad_clip: float = _field(1.0, "max global gradient norm; 0 disables clipping", lo=0.0)


@dataclass(frozen=True)
class TrainConfig:
    """Truncated BPTT loop: batch layout, stopping, evaluation, checkpoints and logging."""

    batch_size: int = _field(32, "parallel streams B", lo=1)
    seq_len: int = _field(64, "BPTT length T (characters per step per stream)", lo=1)
    max_steps: Optional[int] = _field(None, "stop after this many optimizer steps", lo=1)
    max_epochs: Optional[float] = _field(None, "stop after this many passes over the train "
                                         "split", lo=0.0, lo_open=True)
    stop_at_step: Optional[int] = _field(None, "pause cleanly after this step (the schedule "
                                         "still runs to the budget); continue with --resume",
                                         lo=1)
    max_time: Optional[float] = _field(300.0, "stop after this many wall-clock seconds from "
                                       "the first step (evaluations included)",
                                       lo=0.0, lo_open=True)
    eval_interval: int = _field(500, "steps between evaluations on the val split", lo=1)
    eval_max_chars: int = _field(200_000, "val characters per periodic evaluation", lo=1)
    eval_batch_size: int = _field(64, "streams during evaluation", lo=1)
    checkpoint_interval: int = _field(500, "steps between saves of last.pt", lo=1)
    log_interval: int = _field(50, "steps between train scalars and progress updates", lo=1)
    log_gradflow_interval: int = _field(0, "steps between gradient-flow profiles, per-layer "
                                        "gradient norms and the pre-clip norm histogram in "
                                        "TensorBoard; 0 disables", lo=0)
    gradflow_horizon: int = _field(100, "K of the gradient-flow profile logged in training",
                                   lo=1)
    log_gates: bool = _field(True, "log gate saturation (LSTM, GRU) at each evaluation")
    max_nonfinite: int = _field(10, "non-finite losses or gradient norms in a row (each "
                                "update skipped) before training stops", lo=1)
    sample_length: int = _field(300, "characters of the text sample logged at each "
                                "evaluation; 0 disables", lo=0)
    seed: Optional[int] = _field(None, "random seed; unset draws one and logs it", lo=0,
                                 hi=2**63 - 1)
    device: str = _field("auto", "auto, cpu, cuda, cuda:N or mps")
    precision: str = _field("fp32", "bf16 runs forward passes under torch.autocast in "
                            "bfloat16 (for GPUs; losses stay fp32)", choices=("fp32", "bf16"))
    compile: bool = _field(False, "torch.compile the model for training steps")
    run_name: Optional[str] = _field(None, "run folder name (letters, digits, . _ -); unset "
                                     "uses time and cell")
    checkpoint_dir: str = _field("checkpoints", "parent folder of run checkpoints")
    log_dir: str = _field("runs", "parent folder of TensorBoard runs")
    progress: Optional[bool] = _field(None, "tqdm progress bar; unset shows it on a terminal")


@dataclass(frozen=True)
class SampleConfig:
    """Defaults for ``charlm sample`` and the samples logged during training."""

    length: int = _field(500, "characters to generate", lo=0)
    temperature: float = _field(0.8, "softmax temperature; 0 is greedy", lo=0.0)
    top_k: Optional[int] = _field(None, "keep only the k most likely characters", lo=1)
    top_p: Optional[float] = _field(None, "nucleus sampling mass", lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; serialised next to its checkpoints and inside each of them."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (YAML- and ``torch.load(weights_only=True)``-safe)."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = dict(typing.get_type_hints(RunConfig))


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
    bad = ConfigError(f"{key} ({source}) must be {base.__name__}, got {value!r} "
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
            raise bad
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
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{key} ({source}) is {value!r}; choose one of "
                          f"{', '.join(meta['choices'])}{_closest(str(value), meta['choices'])}")
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and (value < lo or (meta["lo_open"] and value == lo)):
        op = ">" if meta["lo_open"] else ">="
        raise ConfigError(f"{key} ({source}) is {value}; it must be {op} {lo if isinstance(lo, int) else f'{lo:g}'}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key} ({source}) is {value}; it must be <= {hi if isinstance(hi, int) else f'{hi:g}'}")


def _apply(cfg: RunConfig, key: str, value: Any, source: str) -> RunConfig:
    """Return ``cfg`` with dotted ``key`` (``section.name``) set to ``value``, validated."""
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"unknown config section '{section}' in '{key}' ({source}); "
                          f"sections are {', '.join(SECTIONS)}{_closest(section, SECTIONS)}")
    sub = getattr(cfg, section)
    fields = {f.name: f for f in dataclasses.fields(sub)}
    if name not in fields:
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


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file as flat dotted keys.

    Raises:
        ConfigError: if the file is missing, unreadable, not YAML, or not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; give a YAML file") from None
    try:
        tree = yaml.safe_load(text)
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
            raise ConfigError(f"--set {item!r} must look like section.key=value, "
                              f"for example --set model.hidden_size=512")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def build_config(yaml_path: str | Path | None = None, sets: Iterable[str] = (),
                 options: Mapping[str, Any] | None = None, base: RunConfig | None = None
                 ) -> RunConfig:
    """Resolve a RunConfig from defaults < YAML file < ``--set`` items < dedicated options.

    Args:
        yaml_path: optional YAML file with sections data, model, optim, train, sample.
        sets: ``section.key=value`` strings.
        options: dotted keys from dedicated CLI options; None values are ignored.
        base: start from this config instead of the defaults (a resumed run's own config).
    Raises:
        ConfigError: for an unknown key, a wrong type or an out-of-range value.
    """
    cfg = base or RunConfig()
    layers = []
    if yaml_path is not None:
        layers.append((load_yaml(yaml_path), str(yaml_path)))
    layers.append((parse_set(sets), "--set"))
    layers.append(({k: v for k, v in (options or {}).items() if v is not None}, "option"))
    for values, source in layers:
        for key, value in values.items():
            cfg = _apply(cfg, key, value, source)
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
    t = cfg.train
    if t.run_name is not None and not _RUN_NAME.match(t.run_name):
        raise ConfigError(f"train.run_name {t.run_name!r} must be a plain folder name of "
                          f"letters, digits, '.', '_' and '-' (no '/', not '.' or '..')")
    if t.max_steps is None and t.max_epochs is None and t.max_time is None:
        raise ConfigError("no stopping rule: set train.max_steps, train.max_epochs or "
                          "train.max_time (e.g. --max-time 300)")
    return cfg


def save_yaml(cfg: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (the file ``--config`` accepts)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def changed_keys(old: RunConfig, new: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every key that differs."""
    a, b = old.to_dict(), new.to_dict()
    return {f"{sec}.{k}": (a[sec][k], b[sec][k]) for sec in a for k in a[sec]
            if a[sec][k] != b[sec][k]}


def describe_keys() -> list[tuple[str, Any, str]]:
    """``(dotted key, default, help)`` for every config key, in declaration order."""
    rows = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            rows.append((f"{section}.{f.name}", f.default, f.metadata["help"]))
    return rows
