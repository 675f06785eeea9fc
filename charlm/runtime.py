"""Process state: the device, seeds, every RNG's state (captured and restored for exact
resume), and signals that ask a run to stop cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
from typing import Any, Callable, Iterator

import torch

from charlm.errors import CharLMError

logger = logging.getLogger(__name__)


def resolve_device(name: str, option: str = "--device") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu.

    Args:
        option: the option the user gave ``name`` with, named in the error.
    Raises:
        CharLMError: if the named device is unknown or not available here.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CharLMError(f"unknown device '{name}'; use {option} auto, cpu, cuda, cuda:N "
                          f"or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CharLMError(f"device cuda was asked for but this torch sees no CUDA GPU; "
                          f"use {option} cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CharLMError(f"device mps was asked for but is not available; use {option} cpu")
    return device


def process_alive(pid: int) -> bool:
    """True if a process with this id runs on this machine (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (CPU and every CUDA device)."""
    random.seed(seed)
    torch.manual_seed(seed)


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
