"""The checkpoint format: plain containers of tensors, saved atomically, loaded with
``weights_only``, and checked for what each use of them needs.

A checkpoint is a dict (:func:`make_payload`) with ``format_version``, ``versions`` (charlm,
torch, python), ``config`` (the resolved :class:`~charlm.config.RunConfig` as a dict),
``vocab`` (the characters as one string, or the byte marker), ``model`` and ``optimizer``
state dicts, ``state`` (step, epoch, position in the epoch, elapsed seconds, best and last val
loss in nats/char), the carried TBPTT ``hidden`` state and the RNG states (``rng``,
``rng_ranks``) and the ``corpus`` digest. Nothing in it needs unpickling of arbitrary
classes, so ``torch.load(path, weights_only=True)`` reads it; what each entry must hold, and
which uses read it, is the table in :mod:`charlm.store.entries`.

How a user names a checkpoint is :mod:`charlm.store.names`; the model it holds is rebuilt by
:mod:`charlm.store.restore`.

Shape legend: L layers, B batch (streams), H hidden size.
"""

from __future__ import annotations

import logging
import platform
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from charlm import __version__
from charlm.config import RunConfig
from charlm.errors import CheckpointError
from charlm.store.entries import FORMAT_VERSION, check_entries, instead
from charlm.system.files import replacing

logger = logging.getLogger(__name__)

def versions() -> dict[str, str]:
    """Library versions recorded in every checkpoint."""
    return {"charlm": __version__, "torch": str(torch.__version__),
            "python": platform.python_version()}


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically and durably (:func:`charlm.system.files.replacing`:
    a temporary file, fsync, rename): a crash at any moment leaves either the previous file or
    the new one, never a torn file.

    Raises:
        CheckpointError: if the folder cannot be written.
    """
    path = Path(path)
    with replacing(path, binary=True, durable=True, checkpoint=True, parents=True,
                   what="checkpoint", error=CheckpointError,
                   advice="make room there, or train into another --checkpoint-dir") as fh:
        torch.save(payload, fh)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    resume: bool = False) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) onto ``map_location`` and check that
    each entry its use reads is there and of the type charlm writes
    (:func:`charlm.store.entries.check_entries`).

    Args:
        resume: also check what continuing the run reads (optimizer, RNG states, carried
            hidden state, corpus digest, and exactly the training counters).
    Raises:
        CheckpointError: one line naming the file, if it is missing, not a checkpoint,
            truncated or corrupt (a record whose CRC-32 does not match: flipped bytes), of an
            unknown or newer format, incomplete, or holding an entry of the wrong type; a
            damaged file's error names the run's other checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic[:2] != b"PK" and magic[:1] != b"\x80":  # zip (torch.save) or a raw pickle
        raise CheckpointError(f"{path} is not a checkpoint: it is not a file torch.save "
                              f"wrote (empty, text or another format)")
    damaged = _failed_record(path) if magic[:2] == b"PK" else None
    if damaged:
        raise CheckpointError(f"{path} is damaged: its record {damaged} fails its CRC-32 "
                              f"check (bytes changed on disk); {instead(path)}")
    try:
        with warnings.catch_warnings():  # torch warns about the protocol of foreign pickles
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; all mean the same here
        raise CheckpointError(f"{path} is not a readable charlm checkpoint "
                              f"({_reason(exc)}); {instead(path)}") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a charlm checkpoint (no format_version)")
    check_entries(ckpt, path, resume)
    return ckpt


def _failed_record(path: Path) -> str | None:
    """The first record of a zip checkpoint whose bytes do not match their CRC-32 (torch
    reads the records without checking them), or None; a file zipfile cannot open at all is
    left for torch.load to report."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return None


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


def make_payload(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                 cfg: RunConfig, vocab, hidden=None, rng: dict | None = None,
                 rng_ranks: list | None = None, corpus_sha256: str | None = None
                 ) -> dict[str, Any]:
    """The checkpoint dict (module doc), with what exact resume needs.

    Args:
        model: the unwrapped module (not DDP or compiled).
        state: the training counters as a plain dict (``TrainState.to_dict()``).
        hidden: the carried state of all B streams, (L, B, H) (LSTM: a pair).
        rng: this process's RNG states (:func:`charlm.system.rng.rng_state`).
        rng_ranks: every rank's RNG states under distributed training (``rng`` is rank 0's).
        corpus_sha256: digest of the corpus trained on, so a resume can tell it changed.
    """
    return {"format_version": FORMAT_VERSION, "versions": versions(),
            "config": cfg.to_dict(), "vocab": vocab.to_payload(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "state": state, "hidden": hidden,
            "rng": rng_ranks[0] if rng_ranks else rng, "rng_ranks": rng_ranks,
            "corpus": {"sha256": corpus_sha256}}


def step_of(ckpt: dict) -> Any:
    """The step a loaded checkpoint was saved at, or ``?`` when it does not say."""
    state = ckpt.get("state")
    return state.get("step", "?") if isinstance(state, dict) else "?"
