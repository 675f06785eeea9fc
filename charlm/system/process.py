"""This process and others: a stop asked for by a signal, and whether another process lives."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Callable, Iterator

logger = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that a command stopped by
    ``kill`` or a container's shutdown cleans up exactly as after Ctrl-C."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt): every command
    that writes removes its temporary files and keeps what it keeps on Ctrl-C. Training's
    :func:`stop_on_signals` takes both signals over while it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_noticed(every_s: float = 0.25) -> Iterator[None]:
    """While inside, wake the main thread every ``every_s`` seconds so that a pending Ctrl-C
    is acted on: wrap ``input()``.

    CPython's readline loop checks for signals only when its ``select()`` is interrupted;
    a Ctrl-C that arrives after the prompt is shown but before that ``select()`` starts is
    left pending until the next key, so a user's press right at the prompt did nothing
    (8 of 10 presses in a pseudo-terminal test). A no-op SIGALRM interrupts the wait, the
    loop checks, and the pending KeyboardInterrupt is raised within ``every_s``.
    """
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: None)
    signal.setitimer(signal.ITIMER_REAL, every_s, every_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def process_alive(pid: int) -> bool:
    """True if a process with this id runs on this machine (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
