"""Checkpoints: plain containers of tensors, saved atomically, loaded with ``weights_only``;
how a user names one; and the model, vocabulary and config one holds.

A checkpoint is a dict (:func:`make_payload`) with ``format_version``, ``versions`` (charlm,
torch, python), ``config`` (the resolved :class:`~charlm.config.RunConfig` as a dict),
``vocab`` (the characters as one string, or the byte marker), ``model`` and ``optimizer``
state dicts, ``state`` (step, epoch, position in the epoch, elapsed seconds, best and last val
loss in nats/char), the carried TBPTT ``hidden`` state and the RNG states (``rng``,
``rng_ranks``). Nothing in it needs unpickling of arbitrary classes, so
``torch.load(path, weights_only=True)`` reads it.

Inference (``sample``, ``eval``, ``inspect``, ...) gets its model from :func:`open_checkpoint`
and never imports the training code.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import re
import secrets
import warnings
from pathlib import Path
from typing import Any

import torch

from charlm import __version__
from charlm.config import RunConfig, from_dict
from charlm.data import ByteVocab, Vocab, vocab_from_payload
from charlm.errors import CharLMError, CheckpointError
from charlm.models import CharLM, create_model

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
BEST, LAST = "best.pt", "last.pt"
LATEST = "latest"
REQUIRED_KEYS = ("versions", "config", "vocab", "model", "state")
# What continuing a run needs besides the weights (TrainState's fields and the RNG states).
RESUME_KEYS = ("optimizer", "rng")
STATE_KEYS = ("step", "epoch", "chunk", "elapsed_s", "best_val_loss", "last_val_loss",
              "last_eval_step", "nonfinite_steps")
NEWER_STATE_KEYS = ("best_step", "evals_since_best")  # absent from older checkpoints


def versions() -> dict[str, str]:
    """Library versions recorded in every checkpoint."""
    return {"charlm": __version__, "torch": str(torch.__version__),
            "python": platform.python_version()}


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically: temp file in the same folder, fsync, replace.

    A crash at any moment leaves either the previous file or the new one, never a torn file.

    Raises:
        CheckpointError: if the folder cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # open(..., "xb") rather than mkstemp: the file gets the umask's usual mode, not 0600
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            with open(tmp, "xb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except (OSError, RuntimeError) as exc:  # torch.save turns a failed write into RuntimeError
        cause = _os_error(exc)
        if cause is None:
            raise
        raise CheckpointError(f"cannot write checkpoint {path}: {cause.strerror or cause}"
                              ) from None
    return path


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (itself, or one it was raised while handling), or None."""
    while exc is not None:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    resume: bool = False) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) onto ``map_location`` and check that
    it holds what its use needs.

    Args:
        resume: also require what continuing the run needs (optimizer, RNG and training
            state, with exactly :data:`STATE_KEYS`).
    Raises:
        CheckpointError: one line naming the file, if it is missing, not a checkpoint,
            truncated or corrupt, of an unknown or newer format, or incomplete.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic[:2] != b"PK" and magic[:1] != b"\x80":  # zip (torch.save) or a raw pickle
        raise CheckpointError(f"{path} is not a checkpoint: it is not a file torch.save "
                              f"wrote (empty, text or another format)")
    try:
        with warnings.catch_warnings():  # torch warns about the protocol of foreign pickles
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; all mean the same here
        raise CheckpointError(f"{path} is not a readable charlm checkpoint "
                              f"({_reason(exc)})") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a charlm checkpoint (no format_version)")
    _check_format(ckpt, path)
    missing = [k for k in REQUIRED_KEYS + (RESUME_KEYS if resume else ()) if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is an incomplete charlm checkpoint: it lacks "
                              f"{', '.join(missing)}")
    if resume:
        _check_resumable(ckpt, path)
    return ckpt


def _check_format(ckpt: dict, path: Path) -> None:
    version = ckpt["format_version"]
    if version == FORMAT_VERSION:
        return
    newer = isinstance(version, int) and version > FORMAT_VERSION
    by = ckpt.get("versions", {}).get("charlm", "?") if isinstance(ckpt.get("versions"),
                                                                   dict) else "?"
    raise CheckpointError(f"{path} has checkpoint format {version}; this charlm ({__version__}) "
                          f"reads format {FORMAT_VERSION}" + (
                              f": it was written by a newer charlm"
                              f"{f' ({by})' if by != __version__ else ''}; upgrade charlm to "
                              f"use it" if newer else ""))


def _check_resumable(ckpt: dict, path: Path) -> None:
    """The training state, optimizer and RNG entries a resume restores, in the shape it
    expects."""
    state = ckpt["state"]
    extra = sorted(set(state) - set(STATE_KEYS + NEWER_STATE_KEYS)) if isinstance(state, dict) \
        else []
    lacking = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
    rng = ckpt["rng"]
    problems = ([f"its state lacks {', '.join(lacking)}"] if lacking else []) + (
        [f"its state has unknown fields {', '.join(extra)}"] if extra else []) + (
        ["its optimizer entry is not an optimizer state"] if not isinstance(
            ckpt["optimizer"], dict) or {"state", "param_groups"} - set(ckpt["optimizer"])
        else []) + (
        ["its rng entry lacks the python or torch state"] if not isinstance(rng, dict) or
        {"python", "torch"} - set(rng) else [])
    if not problems:
        problems = _counter_problems(state) + _rng_problems(rng) + _hidden_problems(ckpt)
    if problems:
        raise CheckpointError(f"{path} cannot be resumed: {'; '.join(problems)}; start a new "
                              f"run from its weights with --init-from instead")


def _counter_problems(state: dict) -> list[str]:
    """Counters a resume cannot start from (negative, or not whole numbers)."""
    bad = [k for k in ("step", "epoch", "chunk", "nonfinite_steps")
           if isinstance(state[k], bool) or not isinstance(state[k], int) or state[k] < 0]
    return [f"its state has invalid {', '.join(f'{k}={state[k]!r}' for k in bad)}"] if bad \
        else []


def _rng_problems(rng: dict) -> list[str]:
    """Restore the RNG states into scratch generators: what ``restore_rng`` would reject."""
    try:
        version, internal, gauss = rng["python"]
        random.Random().setstate((version, tuple(internal), gauss))
        torch.Generator().set_state(rng["torch"])
    except (TypeError, ValueError, RuntimeError):
        return ["its rng entry does not hold valid random-number-generator states"]
    return []


def _hidden_problems(ckpt: dict) -> list[str]:
    """The carried state must be (L, B, H) tensors (an LSTM's pair) of the run's config."""
    hidden = ckpt.get("hidden")
    if hidden is None:
        return []
    try:
        m, t = ckpt["config"]["model"], ckpt["config"]["train"]
        want = (int(m["num_layers"]), int(t["batch_size"]), int(m["hidden_size"]))
    except (KeyError, TypeError, ValueError):
        return []  # the config check names what is wrong with the config
    parts = hidden if isinstance(hidden, (tuple, list)) else (hidden,)
    if all(isinstance(h, torch.Tensor) and tuple(h.shape) == want for h in parts):
        return []
    got = ", ".join(str(tuple(h.shape)) if isinstance(h, torch.Tensor) else type(h).__name__
                    for h in parts)
    return [f"its carried hidden state is {got}, not (num_layers, batch_size, hidden_size) "
            f"= {want}"]


def _reason(exc: Exception) -> str:
    """One line on why torch.load failed."""
    text = str(exc)
    if "Weights only load failed" in text:
        glob = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({glob.group(1)})" if glob else ""
        return (f"refused: it holds pickled Python objects{what} rather than tensors, and "
                f"loading them could run code")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0].split(". ")[0].rstrip(".") if lines else "truncated or empty file"
    return f"{type(exc).__name__}: {first}; the file is truncated or corrupt"


def find_checkpoint(target: str | Path | None, checkpoint_dir: str | Path = "checkpoints",
                    prefer: tuple[str, ...] = (BEST, LAST)) -> Path:
    """Resolve what the user named to one checkpoint file: every command names checkpoints
    the same way.

    Args:
        target: a checkpoint file; a run folder or a run name under ``checkpoint_dir`` (the
            first of ``prefer`` it holds); or None or ``latest`` for the newest run under
            ``checkpoint_dir``.
        checkpoint_dir: the parent of run folders.
        prefer: file names to look for in a run folder, in order.
    Raises:
        CheckpointError: if nothing matches, saying where it looked.
    """
    try:
        return _find(target, Path(checkpoint_dir), prefer)
    except OSError as exc:  # a name too long, a path through a file, permissions, ...
        what = f"checkpoint {target}" if target else f"--checkpoint-dir {checkpoint_dir}"
        raise CheckpointError(f"cannot use {what}: {exc.strerror or exc}") from None


def _find(target: str | Path | None, checkpoint_dir: Path, prefer: tuple[str, ...]) -> Path:
    if target is None or str(target) == LATEST:
        root = Path(checkpoint_dir)
        runs = [p for p in root.glob("*/") if _pick(p, prefer)] if root.is_dir() else []
        if not runs:
            raise CheckpointError(f"no runs with checkpoints under {root}/; train one with "
                                  f"'charlm train' or name a checkpoint file")
        newest = max(runs, key=lambda p: max(f.stat().st_mtime for f in p.glob("*.pt")))
        return _pick(newest, prefer)
    path = Path(target)
    named = Path(checkpoint_dir) / str(target)
    if not path.exists() and named.is_dir():  # a run name
        path = named
    if path.is_dir():
        found = _pick(path, prefer)
        if found is None:
            raise CheckpointError(f"run folder {path} holds no {' or '.join(prefer)}")
        return found
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path} (nor a run of that name under "
                              f"{checkpoint_dir}/)")
    return path


def _pick(run_dir: Path, prefer: tuple[str, ...]) -> Path | None:
    """The first file of ``prefer`` in a run folder, or None."""
    for name in prefer:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def make_payload(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                 cfg: RunConfig, vocab, hidden=None, rng: dict | None = None,
                 rng_ranks: list | None = None, corpus_sha256: str | None = None
                 ) -> dict[str, Any]:
    """The checkpoint dict (module doc), with what exact resume needs.

    Args:
        model: the unwrapped module (not DDP or compiled).
        state: the training counters as a plain dict (``TrainState.to_dict()``).
        hidden: the carried state of all B streams, (L, B, H) (LSTM: a pair).
        rng: this process's RNG states (:func:`charlm.system.runtime.rng_state`).
        rng_ranks: every rank's RNG states under distributed training (``rng`` is rank 0's).
        corpus_sha256: digest of the corpus trained on, so a resume can tell it changed.
    """
    return {"format_version": FORMAT_VERSION, "versions": versions(),
            "config": cfg.to_dict(), "vocab": vocab.to_payload(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "state": state, "hidden": hidden,
            "rng": rng_ranks[0] if rng_ranks else rng, "rng_ranks": rng_ranks,
            "corpus": {"sha256": corpus_sha256}}


def restore_model(ckpt: dict, device: torch.device | str = "cpu", source: str = "checkpoint"
                  ) -> tuple[CharLM, Vocab | ByteVocab, RunConfig]:
    """Rebuild the model (in eval mode, on ``device``), vocabulary and config of a loaded
    checkpoint, after checking that they fit together and that every weight is finite.

    Args:
        source: how to name the checkpoint in errors (its path).
    Raises:
        CheckpointError: naming the config key, vocabulary problem, or the tensors that are
            missing, unknown, misshapen or not finite.
    """
    try:
        cfg = from_dict(ckpt["config"], source=f"{source} config")
    except CharLMError as exc:
        raise CheckpointError(f"{source} holds an invalid config: {exc}") from None
    try:
        vocab = vocab_from_payload(ckpt["vocab"])
    except ValueError as exc:
        raise CheckpointError(f"{source} holds an invalid vocabulary: {exc}") from None
    weights = ckpt["model"]
    bad = [name for name, t in weights.items()
           if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{source} holds non-finite weights (NaN or inf) in "
                              f"{', '.join(bad[:5])}; it cannot be used: take an earlier "
                              f"checkpoint of the run (best.pt or last.pt)")
    model = create_model(cfg.model, vocab.size)
    _load_weights(model, weights, cfg, source)
    return model.to(device).eval(), vocab, cfg


def _load_weights(model: CharLM, weights: dict, cfg: RunConfig, source: str) -> None:
    """``load_state_dict`` with a one-line account of what does not fit."""
    want = model.state_dict()
    missing = [k for k in want if k not in weights]
    unknown = [k for k in weights if k not in want]
    shapes = [f"{k} {tuple(weights[k].shape)} (expected {tuple(v.shape)})"
              for k, v in want.items() if k in weights and weights[k].shape != v.shape]
    m = cfg.model
    what = f"the {m.cell} model its config describes ({m.num_layers} x {m.hidden_size})"
    if missing or unknown or shapes:
        parts = ([f"lacks {', '.join(missing[:4])}"] if missing else []) + (
            [f"has unknown {', '.join(unknown[:4])}"] if unknown else []) + (
            [f"has misshapen {', '.join(shapes[:3])}"] if shapes else [])
        raise CheckpointError(f"{source} does not hold the weights of {what}: it "
                              f"{'; it '.join(parts)}")
    model.load_state_dict(weights)


def open_checkpoint(target: str | Path | None, checkpoint_dir: str | Path = "checkpoints",
                    prefer: tuple[str, ...] = (BEST, LAST),
                    map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """Find (:func:`find_checkpoint`) and load one checkpoint, logging which file it is.

    Returns:
        ``(path, checkpoint dict)``.
    Raises:
        CheckpointError: if nothing matches, or the file is not a readable checkpoint.
    """
    path = find_checkpoint(target, checkpoint_dir, prefer)
    ckpt = load_checkpoint(path, map_location)
    logger.info("loaded %s (step %s)", path, _step(ckpt))
    return path, ckpt


def _step(ckpt: dict):
    state = ckpt.get("state")
    return state.get("step", "?") if isinstance(state, dict) else "?"


def resume_target(target: str, checkpoint_dir: str | Path) -> Path:
    """The checkpoint ``--resume`` names: ``latest``, a run name, a run folder or a file
    (``last.pt`` preferred).

    Raises:
        CheckpointError: if nothing matches; if the file is not a ``last.pt`` or ``best.pt``
            (a resumed run writes into the file's folder, whose other files are not this
            run's); or if it is older than its run's ``last.pt`` (resuming it would overwrite
            the newer one).
    """
    found = find_checkpoint(target, checkpoint_dir, prefer=(LAST, BEST))
    if found.name not in (LAST, BEST):
        raise CheckpointError(
            f"{found} is not a run's {LAST} or {BEST}: --resume continues a run in its own "
            f"folder and would write {LAST} and {BEST} beside it. Start a new run from it "
            f"with --init-from, or copy it into an empty folder as {LAST} and resume that")
    last = found.parent / LAST
    if found.name != LAST and last.is_file():
        at, newest = (_step(load_checkpoint(p)) for p in (found, last))
        if isinstance(at, int) and isinstance(newest, int) and newest > at:
            raise CheckpointError(
                f"{found} is at step {at} but {last} is at step {newest}; resuming from the "
                f"older one would overwrite {LAST}. Resume from {last}, or start a new run "
                f"from {found} with --init-from")
    return found
