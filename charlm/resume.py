"""Exact resume and clean stops: RNG state, resume targets, config overrides, signals.

A resumed run continues from ``last.pt`` with the model, optimizer, step, epoch, position in
the epoch, carried TBPTT hidden state, every RNG state and the best val figure of the moment
it was saved, so on a CPU it reproduces the uninterrupted run bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from charlm.checkpoint import BEST, LAST, CheckpointError, find_checkpoint
from charlm.config import ConfigError, RunConfig, build_config, changed_keys, from_dict
from charlm.errors import CharLMError

logger = logging.getLogger(__name__)

# Keys a resumed run cannot change: they fix the weights' shapes or the data layout that the
# saved position and hidden state refer to (the seed: every RNG state is restored anyway).
FROZEN_ON_RESUME = ("model.", "data.unit", "data.train_frac", "data.val_frac", "train.batch_size",
                    "train.seq_len", "train.run_name", "train.seed")


class Interrupted(CharLMError):
    """Training stopped on SIGINT or SIGTERM after saving; ``exit_code`` is 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from: Python's, torch's CPU generator and each CUDA device's."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` saved (CUDA states only where CUDA is present)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def resume_target(target: str, checkpoint_dir: str | Path) -> Path:
    """The checkpoint ``--resume`` names: ``latest``, a run name, a run folder or a file.

    Raises:
        CheckpointError: if nothing matches.
    """
    found = find_checkpoint(None if target == "latest" else target, checkpoint_dir,
                            prefer=(LAST, BEST))
    last = found.parent / LAST
    if found.name != LAST and last.is_file():
        from charlm.checkpoint import load_checkpoint

        at, newest = (load_checkpoint(p)["state"]["step"] for p in (found, last))
        if newest > at:
            raise CheckpointError(
                f"{found} is at step {at} but {last} is at step {newest}; resuming from the "
                f"older one would overwrite {LAST}. Resume from {last}, or start a new run "
                f"from {found} with --init-from")
    return found


def merge_overrides(saved: RunConfig, wanted: RunConfig) -> RunConfig:
    """Accept the overrides given on resume, log each, refuse the ones that cannot change.

    Raises:
        ConfigError: naming each frozen key that was changed.
    """
    changes = changed_keys(saved, wanted)
    frozen = [k for k in changes if k.startswith(FROZEN_ON_RESUME)]
    if frozen:
        raise ConfigError(
            "a resumed run cannot change " + ", ".join(
                f"{k} ({changes[k][0]} -> {changes[k][1]})" for k in frozen) +
            "; start a new run, or use --init-from CHECKPOINT to fine-tune from its weights")
    for key, (old, new) in changes.items():
        logger.info("resume override: %s %s -> %s", key, old, new)
    return wanted


def config_for_resume(ckpt: dict, run_dir, yaml_path=None, sets=(), options=None
                      ) -> RunConfig:
    """The saved config of a run with the overrides given now (``stop_at_step`` is cleared;
    the run name is the folder's, so a copied run folder logs under its own name).

    Raises:
        ConfigError: for bad overrides or ones that cannot change on resume.
    """
    saved = from_dict(ckpt["config"])
    base = dataclasses.replace(saved, train=dataclasses.replace(
        saved.train, stop_at_step=None, run_name=run_dir.name))
    return merge_overrides(base, build_config(yaml_path, sets, options, base=base))


def config_for_init(ckpt: dict, yaml_path=None, sets=(), options=None) -> RunConfig:
    """A new run's config whose model section and ``data.unit`` are the checkpoint's
    (fine-tuning); everything else starts from the defaults as for a new run.

    Raises:
        ConfigError: if model settings or the unit given now (even ones equal to a default)
            differ from the checkpoint's, listing them.
    """
    saved = from_dict(ckpt["config"])
    cfg = build_config(yaml_path, sets, options)
    on_saved = changed_keys(saved, build_config(yaml_path, sets, options, base=saved))
    clash = [f"{k} {old!r} -> {new!r}" for k, (old, new) in on_saved.items()
             if k.startswith("model.") or k == "data.unit"]
    if clash:
        raise ConfigError(f"--init-from keeps the checkpoint's model settings and data.unit; "
                          f"drop the ones that differ (checkpoint -> given): "
                          f"{', '.join(clash)}")
    return dataclasses.replace(cfg, model=saved.model,
                               data=dataclasses.replace(cfg.data, unit=saved.data.unit))


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], int | None]]:
    """While inside, SIGINT and SIGTERM ask for a clean stop instead of killing the process.

    Yields:
        A function returning the signal received so far, or None. A second signal raises
        KeyboardInterrupt at once (the previous checkpoint stays intact).
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def handler(signum, frame) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        logger.warning("%s received: finishing this step, then saving (again to abort now)",
                       signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

