"""How a user names a checkpoint: a ``.pt`` file, a run folder, a run name under
``--checkpoint-dir``, or ``latest`` (the newest run). Every command resolves names here, so they
all take the same ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from charlm.errors import CheckpointError
from charlm.store.checkpoint import load_checkpoint, step_of
from charlm.store.folders import BEST, LAST

logger = logging.getLogger(__name__)

LATEST = "latest"


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
        return _pick(max(runs, key=_saved_at), prefer)
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


def _saved_at(run_dir: Path) -> float:
    """When the run last saved a checkpoint: the newest mtime of its ``*.pt`` files. A file
    that cannot be read (a dangling link, a permission) is skipped with a warning, so that
    one broken run folder does not hide every other run from ``latest``."""
    times = []
    for f in run_dir.glob("*.pt"):
        try:
            times.append(f.stat().st_mtime)
        except OSError as exc:
            logger.warning("skipping %s in 'latest': %s", f, exc.strerror or exc)
    return max(times, default=0.0)


def _pick(run_dir: Path, prefer: tuple[str, ...]) -> Path | None:
    """The first file of ``prefer`` in a run folder, or None."""
    for name in prefer:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


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
    logger.info("loaded %s (step %s)", path, step_of(ckpt))
    return path, ckpt


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
        at, newest = step_of(load_checkpoint(found)), _step_if_readable(last)
        if isinstance(at, int) and isinstance(newest, int) and newest > at:
            raise CheckpointError(
                f"{found} is at step {at} but {last} is at step {newest}; resuming from the "
                f"older one would overwrite {LAST}. Resume from {last}, or start a new run "
                f"from {found} with --init-from")
    return found


def _step_if_readable(last: Path) -> int | str:
    """The step of a run's ``last.pt``, or ``?`` (with a warning) when it cannot be read: a
    torn or damaged ``last.pt`` must not block resuming from ``best.pt``, the way forward
    its own error names."""
    try:
        return step_of(load_checkpoint(last))
    except CheckpointError as exc:
        logger.warning("%s cannot be read, so resuming from %s; the resumed run replaces it at "
                       "its first save (%s)", last, BEST, exc)
        return "?"
