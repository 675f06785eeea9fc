"""Allocation failures, on any device, as one-line errors naming the sizes that caused them."""

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
