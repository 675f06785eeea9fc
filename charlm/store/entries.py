"""What each top-level entry of a checkpoint must hold, and which uses read it: one table
(:data:`ENTRIES`), checked as the file enters (:func:`check_entries`, called by
:func:`charlm.store.checkpoint.load_checkpoint`), so that no later reader meets a value of the
wrong type.

A checkpoint is a user file: copied, edited by hand, written by an older or a foreign tool.
``torch.load(weights_only=True)`` can give any entry None, a bool, an int of any size, a
float, a str, a list, a tuple, a dict or a tensor. Every use reads the weights, config,
vocabulary, versions and counters; only a resume reads the optimizer, RNG, carried hidden state
and corpus digest, so a checkpoint stripped of those (or holding anything there) still
samples, evaluates and fine-tunes.

Shape legend: L layers, B batch (streams), H hidden size.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from charlm import __version__
from charlm.config.cells import CELLS
from charlm.errors import CheckpointError
from charlm.store.folders import BEST, LAST

FORMAT_VERSION = 1
EVERY, RESUME = "every use", "resume"
INT64 = 2**63  # counters are whole numbers below it (TensorBoard steps, tensors)
# The training counters (TrainState's fields), each with the least value it can take.
COUNTERS = {"step": 0, "epoch": 0, "chunk": 0, "last_eval_step": -1, "nonfinite_steps": 0,
            "best_step": -1, "evals_since_best": 0}
STATE_KEYS = ("step", "epoch", "chunk", "elapsed_s", "best_val_loss", "last_val_loss",
              "last_eval_step", "nonfinite_steps")
NEWER_STATE_KEYS = ("best_step", "evals_since_best")  # absent from older checkpoints
_NEW_RUN = "start a new run from its weights with --init-from instead"  # a resume's way forward


def describe(value: Any) -> str:
    """What a loaded value is, in a few words: ``a list of 2 items``, ``an int of 31 digits``."""
    if value is None or isinstance(value, bool):
        return f"a bool ({value})" if value is not None else "None"
    if isinstance(value, int):
        digits = len(str(abs(value)))
        return f"an int of {digits} digits" if digits > 20 else f"an int ({value})"
    if isinstance(value, float):
        return f"a float ({value!r})"
    if isinstance(value, str):
        return f"a str ({value[:30]!r}{'...' if len(value) > 30 else ''})"
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)} item{'s' * (len(value) != 1)}"
    return f"a {type(value).__name__}"


def _whole(value: Any, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value < INT64


def _number(value: Any) -> bool:
    """A float, or an int a float holds (math.isfinite(10**400) raises OverflowError)."""
    return isinstance(value, float) or (_whole(value, -INT64))


def _first_bad(mapping: dict, fits: Callable[[Any, Any], bool]) -> str | None:
    """``a dict whose 'k' is ...`` for the first item of ``mapping`` that does not fit."""
    for key, value in mapping.items():
        if not fits(key, value):
            return f"a dict whose {key!r} is {describe(value)}"
    return None


def _mapping(fits: Callable[[Any, Any], bool], needs: tuple[str, ...] = ()):
    """A problem finder for a dict holding every key of ``needs``, whose items all fit."""
    def problem(value: Any) -> str | None:
        if not isinstance(value, dict):
            return describe(value)
        lacking = [k for k in needs if k not in value]
        if lacking:
            return f"a dict without {', '.join(lacking)}"
        return _first_bad(value, fits)
    return problem


def _state_field(key: Any, value: Any) -> bool:
    """A counter of TrainState is a whole number from its least value; its clock a finite
    number of seconds from 0; its losses numbers (inf and NaN mean none yet); other keys are
    a resume's concern (:func:`_resume_problems`)."""
    if key in COUNTERS:
        return _whole(value, COUNTERS[key])
    if key == "elapsed_s":
        return _number(value) and math.isfinite(value) and value >= 0
    return _number(value) if key in ("best_val_loss", "last_val_loss") else True


def _vocab(value: Any) -> str | None:
    if isinstance(value, str) or (isinstance(value, dict) and value.get("unit") == "byte"):
        return None
    return describe(value)


def _rng(value: Any) -> str | None:
    """Restore the states into scratch generators: what ``restore_rng`` would reject."""
    shape = _mapping(lambda k, v: k != "cuda" or (isinstance(v, (list, tuple)) and all(
        isinstance(s, torch.Tensor) and s.dtype == torch.uint8 for s in v)),
        needs=("python", "torch"))(value)
    if shape:
        return shape
    try:
        version, internal, gauss = value["python"]
        random.Random().setstate((version, tuple(internal), gauss))
        torch.Generator().set_state(value["torch"])
    except (TypeError, ValueError, RuntimeError, OverflowError):
        return "states that do not restore into a generator"
    return None


def _rng_ranks(value: Any) -> str | None:
    if not isinstance(value, list):
        return describe(value)
    for rank, state in enumerate(value):
        got = _rng(state)
        if got:
            return f"a list whose item {rank} is {got}"
    return None


def _hidden(value: Any) -> str | None:
    parts = value if isinstance(value, tuple) else (value,)  # map_hidden takes a tuple
    if parts and all(isinstance(h, torch.Tensor) for h in parts):
        return None  # their shapes are checked against the config (_hidden_problems)
    return describe(value)


def _corpus_part(key: Any, part: Any) -> bool:
    """The corpus digest: None (not recorded), or hashlib's lowercase hex sha256."""
    return key != "sha256" or part is None or (
        isinstance(part, str) and re.fullmatch("[0-9a-f]{64}", part) is not None)


def _optimizer_part(key: Any, part: Any) -> bool:
    """torch's ``Optimizer.state_dict()``: per-parameter state, and groups of params."""
    if key == "state":
        return isinstance(part, dict)
    if key == "param_groups":
        return isinstance(part, list) and all(
            isinstance(group, dict) and isinstance(group.get("params"), list) for group in part)
    return True


@dataclass(frozen=True)
class Entry:
    """One top-level entry of a checkpoint.

    Attributes:
        name: its key.
        holds: what charlm writes there, in words (for the error).
        problem: ``problem(value)`` is None when the value fits, else what it holds instead.
        use: who reads it: :data:`EVERY` use, or only a :data:`RESUME`.
        optional: it may be absent or None (older checkpoints, single-process runs).
    """

    name: str
    holds: str
    problem: Callable[[Any], str | None]
    use: str = EVERY
    optional: bool = False


ENTRIES = (  # in the order make_payload writes them
    Entry("format_version", "its format number, a whole number below 2**63",
          lambda v: None if _whole(v, -INT64) else describe(v)),
    Entry("versions", "a mapping of library names to version strings",
          _mapping(lambda k, v: isinstance(k, str) and isinstance(v, str))),
    Entry("config", "a mapping of config sections (data, model, optim, train, sample)",
          _mapping(lambda k, v: isinstance(k, str) and isinstance(v, dict))),
    Entry("vocab", "the characters as one string, or the byte marker {'unit': 'byte', ...}",
          _vocab),
    Entry("model", "a mapping of parameter names to tensors",
          _mapping(lambda k, v: isinstance(k, str) and isinstance(v, torch.Tensor))),
    Entry("optimizer", "an optimizer state dict (state, and param_groups of params)",
          _mapping(_optimizer_part, needs=("state", "param_groups")), RESUME),
    Entry("state", "a mapping of training counters (whole numbers from 0, below 2**63; "
                   "elapsed_s finite seconds; losses numbers)", _mapping(_state_field)),
    Entry("hidden", "None, or the carried (L, B, H) tensor (an LSTM's pair of them)",
          _hidden, RESUME, optional=True),
    Entry("rng", "random-number-generator states (python, torch and each CUDA device's)",
          _rng, RESUME),
    Entry("rng_ranks", "None, or a list of each process's random-number-generator states",
          _rng_ranks, RESUME, optional=True),
    Entry("corpus", "None, or {'sha256': the corpus's hex digest}",
          _mapping(_corpus_part, needs=("sha256",)), RESUME, optional=True),
)


def instead(path: Path) -> str:
    """The way forward from a bad checkpoint: the run's other one, where it has one."""
    other = path.with_name(LAST if path.name == BEST else BEST)
    if path.name in (BEST, LAST) and other.is_file():
        return f"use the run's other checkpoint, {other}, instead"
    return "use another checkpoint of the run (best.pt or last.pt), or train again"


def check_entries(ckpt: dict, path: Path, resume: bool = False) -> None:
    """Refuse, in one line, a checkpoint whose entries a use would trip over: the format
    first (a newer format may hold other types), then every entry the use reads (absent
    where required, or of the wrong type), then what a resume restores against the config.

    Args:
        ckpt: a loaded checkpoint, a dict with ``format_version``.
        path: its file, named in errors.
        resume: the use is continuing the run (it also reads the :data:`RESUME` entries).
    Raises:
        CheckpointError: naming the file, the entry, what it holds and what it should hold,
            and the way forward (the run's other checkpoint; for a resume, ``--init-from``).
    """
    read = [e for e in ENTRIES if e.use == EVERY or resume]
    _refuse_wrong_types(ckpt, path, read[:1])  # format_version
    _check_format(ckpt, path)
    missing = [e.name for e in read if not e.optional and e.name not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is an incomplete charlm checkpoint: it lacks "
                              f"{', '.join(missing)}")
    _refuse_wrong_types(ckpt, path, read[1:])
    problems = _resume_problems(ckpt) if resume else []
    if problems:
        raise CheckpointError(f"{path} cannot be resumed: {'; '.join(problems)}; {_NEW_RUN}")


def _refuse_wrong_types(ckpt: dict, path: Path, entries: list[Entry]) -> None:
    for entry in entries:
        value = ckpt.get(entry.name)
        got = None if entry.optional and value is None else entry.problem(value)
        if got and entry.use == RESUME:
            raise CheckpointError(f"{path} cannot be resumed: its {entry.name} entry holds "
                                  f"{got}, where charlm writes {entry.holds}; {_NEW_RUN}")
        if got:
            raise CheckpointError(f"{path} cannot be used: its {entry.name} entry holds {got}, "
                                  f"where charlm writes {entry.holds} (the file was changed, "
                                  f"or not written by charlm); {instead(path)}")


def _check_format(ckpt: dict, path: Path) -> None:
    version = ckpt["format_version"]
    if version == FORMAT_VERSION:
        return
    versions = ckpt.get("versions")
    by = versions.get("charlm", "?") if isinstance(versions, dict) else "?"
    newer = version > FORMAT_VERSION
    raise CheckpointError(f"{path} has checkpoint format {version} (its format_version entry); "
                          f"this charlm ({__version__}) reads format {FORMAT_VERSION}" + (
                              f": it was written by a newer charlm"
                              f"{f' ({by})' if isinstance(by, str) and by != __version__ else ''}"
                              f"; upgrade charlm to use it" if newer else ""))


def _resume_problems(ckpt: dict) -> list[str]:
    """What a resume restores that the types alone do not settle: exactly the counters a
    TrainState takes, and a carried state of the config's shape."""
    state = ckpt["state"]
    extra = sorted(map(str, set(state) - set(STATE_KEYS + NEWER_STATE_KEYS)))
    lacking = [k for k in STATE_KEYS if k not in state]
    return ([f"its state lacks {', '.join(lacking)}"] if lacking else []) + (
        [f"its state has unknown fields {', '.join(extra)}"] if extra else []) + \
        _hidden_problems(ckpt)


def _hidden_problems(ckpt: dict) -> list[str]:
    """The carried state must be the cell's (L, B, H) tensors (an LSTM's pair) of the run's
    config."""
    hidden = ckpt.get("hidden")
    if hidden is None:
        return []
    try:
        m, t = ckpt["config"]["model"], ckpt["config"]["train"]
        want = (int(m["num_layers"]), int(t["batch_size"]), int(m["hidden_size"]))
        count = len(CELLS[m["cell"]].state)
    except (KeyError, TypeError, ValueError, OverflowError):
        return []  # the config check names what is wrong with the config
    parts = hidden if isinstance(hidden, tuple) else (hidden,)
    if len(parts) == count and all(tuple(h.shape) == want for h in parts):
        return []
    got = ", ".join(str(tuple(h.shape)) for h in parts)
    return [f"its carried hidden state is {got}, not {count} tensor(s) of (num_layers, "
            f"batch_size, hidden_size) = {want}"]
