"""Which device a command runs on, and honest clocks on it.

Shape legend: none; every function here takes or returns a :class:`torch.device`.
"""

from __future__ import annotations

import logging

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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cpu_has_bf16() -> bool:
    """True when oneDNN has native bfloat16 kernels on this CPU (AVX-512 BF16 or AMX): the
    fused LSTM kernel runs under bf16 autocast only then."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
