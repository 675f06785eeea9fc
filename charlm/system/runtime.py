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
import time
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


class ThreadShare:
    """Gives up all but one intra-op thread while other processes keep the CPU busy, and
    takes them back when they stop: OpenMP threads of two processes on the same cores wait
    for each other at every barrier, so each ends far slower than on one thread.

    It reads, every ``period_s`` seconds, how many cores other processes used since the last
    reading (Linux ``/proc``; elsewhere it does nothing). Thread counts do not change the
    results here (a test trains with 1 and 2 threads and compares the weights).

    Args:
        busy: cores used by others above which one thread is used.
        idle: cores used by others below which the threads come back.
    """

    def __init__(self, period_s: float = 0.5, busy: float = 0.5, idle: float = 0.25) -> None:
        self.full, self.period_s, self.busy, self.idle = torch.get_num_threads(), period_s, \
            busy, idle
        self.last = _cpu_times()
        self.active = self.last is not None and self.full > 1

    def check(self) -> None:
        """Look again if ``period_s`` has passed; change the thread count if it should."""
        if not self.active:
            return
        now = _cpu_times()
        if now is None or now[0] - self.last[0] < self.period_s:
            return
        wall, others = now[0] - self.last[0], (now[1] - self.last[1]) - (now[2] - self.last[2])
        self.last = now
        load = others / wall                                  # cores used by others
        threads = torch.get_num_threads()
        if load > self.busy and threads > 1:
            torch.set_num_threads(1)
            logger.info("other processes are using %.1f cores: training on 1 thread until "
                        "they stop", load)
        elif load < self.idle and threads < self.full:
            torch.set_num_threads(self.full)
            logger.info("the CPU is free again: training on %d threads", self.full)

    def restore(self) -> None:
        """Put the thread count back as it was."""
        if self.active:
            torch.set_num_threads(self.full)


def _cpu_times() -> tuple[float, float, float] | None:
    """(monotonic seconds, CPU seconds all processes used, CPU seconds this one used), or
    None where /proc cannot tell."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()[1:]
        with open("/proc/self/stat", encoding="ascii") as fh:
            mine = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # user, nice, system, irq, softirq: not idle or iowait, nor steal (time the hypervisor gave
    # to other machines, which no thread count here can change)
    busy = sum(int(f) for i, f in enumerate(fields[:7]) if i not in (3, 4))
    return time.monotonic(), busy / tick, (int(mine[11]) + int(mine[12])) / tick


@contextlib.contextmanager
def threads_for(batch: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """On a CPU, one intra-op thread for work on a few rows at a time (sampling at batch 1):
    waking threads costs more than such tiny operations gain from them, the more cores the
    worse. Elsewhere, or for more rows, nothing changes."""
    before = torch.get_num_threads()
    if batch <= 4 and before > 1 and torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
