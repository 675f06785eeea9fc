"""Memory: what a device has left, size estimates checked against it before anything is
built, and allocation failures, on any device, as one-line errors naming the sizes."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from charlm.errors import ResourceError

_OOM_WORDS = ("can't allocate memory", "out of memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: ``MemoryError``, ``torch.OutOfMemoryError``
    (CUDA, MPS) or the CPU allocator's ``RuntimeError`` ("can't allocate memory")."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    if isinstance(exc, (MemoryError, oom)) and not isinstance(exc, ResourceError):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc) for w in _OOM_WORDS)


@contextlib.contextmanager
def allocation_guard(what: str, sizes: str, fix: str) -> Iterator[None]:
    """Turn an allocation failure inside the block into a :class:`ResourceError`.

    Args:
        what: what was being done ("training").
        sizes: the sizes in use ("batch_size 32, seq_len 64, hidden_size 256").
        fix: the options that lower them ("lower --batch-size, --seq-len or --hidden-size").
    Raises:
        ResourceError: for ``MemoryError``, ``torch.OutOfMemoryError`` or an allocator's
            ``RuntimeError``; other exceptions pass unchanged.
    """
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise ResourceError(f"out of memory while {what} ({sizes}); {fix}") from None


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Bytes that new allocations on ``device`` can still get, or None where it is unknown.

    CUDA: the free memory the driver reports (``torch.cuda.mem_get_info``). CPU: Linux's
    ``MemAvailable`` (``/proc/meminfo``), lowered to what a cgroup's ``memory.max`` leaves (a
    container's limit is often far below the host's memory). Other devices (MPS): None.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    found = [n for n in (_meminfo_available(), _cgroup_left()) if n is not None]
    return min(found) if found else None


def _meminfo_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None off Linux or on kernels < 3.14)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left() -> int | None:
    """Bytes a cgroup v2 ``memory.max`` leaves above ``memory.current`` (None if no limit)."""
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
            used = int(fh.read().strip())
        return None if limit == "max" else max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes in decimal units: ``640.0 GB``, ``12.3 MB``, ``512 bytes``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def check_fits(need: int, what: str, device: torch.device | str, fix: str) -> None:
    """Refuse, before anything is allocated, a job whose size estimate exceeds the memory
    available on ``device`` (:func:`available_bytes`; nothing is refused where it is unknown).

    Args:
        need: the estimate, bytes (``charlm.models.size``).
        what: what would need it ("training", "sampling").
        fix: the options that lower it ("lower --hidden-size, --batch-size or --seq-len").
    Raises:
        ResourceError: one line naming the bytes needed and available and ``fix``.
    """
    free = available_bytes(device)
    if free is not None and need > free:
        raise ResourceError(f"{what} needs about {format_bytes(need)} ({need:,} bytes) on "
                            f"{torch.device(device)}, more than the {format_bytes(free)} "
                            f"available; {fix}")
