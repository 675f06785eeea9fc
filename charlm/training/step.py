"""One optimizer update of truncated BPTT: forward, loss, backward, clipping, and a skip
when the loss or the gradient is not finite.

Shape legend: B batch (streams), T time steps, V vocab size, L layers, H hidden size.

References:
    Williams & Peng 1990 (truncated BPTT). Pascanu, Mikolov & Bengio 2013, "On the difficulty
    of training recurrent neural networks", section 3.2 (gradient-norm clipping).
    Loshchilov & Hutter 2019, "Decoupled weight decay regularization" (AdamW).
"""

from __future__ import annotations

import math

import torch

from charlm.config import OptimConfig
from charlm.evaluation.loss import loss_fn
from charlm.models.lm import CharLM
from charlm.models.state import Hidden, detach_hidden


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over all parameters, at the peak learning rate.

    On CUDA it is the fused AdamW, which can skip a non-finite update on the device itself
    (its ``found_inf`` input, as ``torch.amp.GradScaler`` uses it), so no step waits for the
    host; elsewhere the default (foreach) implementation.
    """
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             weight_decay=cfg.weight_decay, fused=fused or None)


def skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """True when ``optimizer.step()`` honours ``optimizer.found_inf`` (fused Adam/AdamW)."""
    return bool(optimizer.defaults.get("fused"))


def train_step(model: CharLM, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, hidden: Hidden | None, grad_clip: float,
               autocast: torch.dtype | None = None, check_loss: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor, Hidden, torch.Tensor]:
    """One optimizer update on one (B, T) chunk, skipped when the loss or gradient is not finite.

    Args:
        x, y: (B, T) int64 inputs and targets.
        hidden: carried state from the previous chunk (already detached) or None.
        grad_clip: max global gradient norm; 0 disables clipping (the norm is still measured).
        autocast: run the forward pass under ``torch.autocast`` in this dtype (e.g. bfloat16);
            None runs it in the parameters' dtype.
        check_loss: also skip when this process's loss is not finite. Under DDP only the
            gradient norm (the same on every rank after the all-reduce) decides, so that all
            ranks skip or apply the same updates; a non-finite loss gives a non-finite norm.
    Returns:
        ``(loss, grad_norm, hidden, ok)``: scalar loss in nats/char, the pre-clip global norm,
        the new state detached from this chunk's graph, and ``ok``, a 0-d bool tensor: whether
        the update was applied. With a fused optimizer (CUDA) the skip happens on the device
        and nothing is read back; otherwise deciding it reads one flag (free on a CPU).
    """
    with torch.autocast(x.device.type, dtype=autocast or torch.bfloat16,
                        enabled=autocast is not None):
        logits, hidden = model(x, hidden)
    loss = loss_fn(logits, y)  # in float32 whatever the forward ran in
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                          grad_clip if grad_clip > 0 else math.inf)
    ok = torch.isfinite(norm) & (torch.isfinite(loss) | (not check_loss))
    if skips_on_device(optimizer):
        optimizer.found_inf = (~ok).float()  # the fused kernel leaves everything unchanged
        optimizer.step()
    elif bool(ok):
        optimizer.step()
    return loss.detach(), norm.detach(), detach_hidden(hidden), ok


def optim_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate the optimizer's first parameter group holds now."""
    return optimizer.param_groups[0]["lr"]
