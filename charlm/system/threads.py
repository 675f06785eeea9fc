"""How many threads torch uses on a CPU: fewer while other processes keep it busy, one for
work on a few rows at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Iterator

import torch

logger = logging.getLogger(__name__)


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
