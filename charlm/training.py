"""Truncated-BPTT training: the loss, one optimizer step, evaluation, and the fit loop.

Shape legend: B batch (streams), T time steps, V vocab size, L layers, H hidden size.
Losses are mean negative log-likelihood of the next character in nats/char.

The loop is generic: what happens at a log, evaluation, checkpoint or the end is given as
:class:`Hooks` (see :mod:`charlm.run`), so the loop itself has no file or TensorBoard code.

References:
    Williams & Peng 1990 (truncated BPTT). Pascanu, Mikolov & Bengio 2013, "On the difficulty
    of training recurrent neural networks", section 3.2 (gradient-norm clipping).
    Loshchilov & Hutter 2017/2019, "SGDR" (cosine decay) and "Decoupled weight decay" (AdamW).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from charlm.config import OptimConfig, RunConfig, TrainConfig
from charlm.corpora import DataError
from charlm.data import TBPTTBatches
from charlm.models import CharLM, Hidden, detach_hidden, map_hidden

logger = logging.getLogger(__name__)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
            ) -> torch.Tensor:
    """Next-character cross-entropy.

    Args:
        logits: (B, T, V) unnormalised scores.
        targets: (B, T) int64 ids in [0, V).
        reduction: ``mean`` (nats/char) or ``sum`` (nats).
    Returns:
        Scalar tensor; :func:`charlm.metrics.nats_to_bits` turns nats/char into bpc.
    Raises:
        ValueError: if the batch or time sizes of logits and targets differ.
    """
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} "
                         f"differ in (B, T)")
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction=reduction)


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over all parameters, at the peak learning rate."""
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             weight_decay=cfg.weight_decay)


def lr_at(cfg: OptimConfig, step: int, progress: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based) at training ``progress`` in [0, 1].

    Linear warm-up over ``warmup_steps``, times a cosine from ``lr`` down to ``min_lr`` over
    the progress of the run. Progress may be a fraction of steps or of the wall-clock budget,
    which :mod:`torch.optim.lr_scheduler` (step-indexed only) cannot express.
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule == "constant":
        return cfg.lr * warm
    p = min(max(progress, 0.0), 1.0)
    return warm * (cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * p)))


def train_step(model: CharLM, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, hidden: Hidden | None, grad_clip: float
               ) -> tuple[torch.Tensor, torch.Tensor, Hidden]:
    """One optimizer update on one (B, T) chunk; nothing here syncs with the device.

    Args:
        x, y: (B, T) int64 inputs and targets.
        hidden: carried state from the previous chunk (already detached) or None.
        grad_clip: max global gradient norm; 0 disables clipping (the norm is still measured).
    Returns:
        ``(loss, grad_norm, hidden)``: scalar loss in nats/char, the pre-clip global norm, and
        the new state detached from this chunk's graph.
    """
    logits, hidden = model(x, hidden)
    loss = loss_fn(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                          grad_clip if grad_clip > 0 else math.inf)
    optimizer.step()
    return loss.detach(), norm.detach(), detach_hidden(hidden)


@torch.inference_mode()
def evaluate(model: CharLM, ids: np.ndarray, batch_size: int, seq_len: int,
             max_chars: int | None = None) -> tuple[float, int]:
    """Mean loss over a split, the hidden state carried through it.

    The split is laid out as in training (:class:`~charlm.data.TBPTTBatches`), each stream's
    state carried chunk to chunk; the few leftover pairs continue the last stream, so every
    target in ``ids[1:]`` is scored exactly once.

    Args:
        ids: (N,) encoded split.
        batch_size: streams; lowered when the split is shorter.
        max_chars: score only the first ``max_chars`` targets; None scores all.
    Returns:
        ``(loss_nats, num_chars)``: mean nats/char and how many targets were scored.
    Raises:
        DataError: if the split has fewer than 2 characters.
    """
    if max_chars is not None:
        ids = ids[:max_chars + 1]
    if len(ids) < 2:
        raise DataError(f"the evaluation split has {len(ids)} characters; it needs at least 2 "
                        f"(raise data.val_frac or give a longer corpus)")
    device = next(model.parameters()).device
    batches = TBPTTBatches(ids, min(batch_size, len(ids) - 1), seq_len, device)
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    hidden = None
    for j in range(batches.all_chunks):
        x, y = batches.chunk(j)
        logits, hidden = model(x, hidden)
        total += loss_fn(logits, y, reduction="sum")
    if batches.tail_len:
        x, y = batches.tail()
        logits, _ = model(x, map_hidden(hidden, lambda h: h[:, -1:].contiguous()))
        total += loss_fn(logits, y, reduction="sum")
    model.train(was_training)
    return total.item() / batches.num_pairs, batches.num_pairs


@dataclass
class TrainState:
    """Where a run is: counters, clock and best figure (all plain numbers, checkpoint-safe)."""

    step: int = 0                  # optimizer updates done
    epoch: int = 0                 # full passes over the train split done
    chunk: int = 0                 # next chunk index within the epoch
    elapsed_s: float = 0.0         # wall-clock seconds of training, evaluations included
    best_val_loss: float = math.inf
    last_val_loss: float = math.nan
    last_eval_step: int = -1

    def to_dict(self) -> dict:
        """Plain dict for the checkpoint."""
        return dict(self.__dict__)


@dataclass
class Budget:
    """When to stop: ``max_steps``, ``max_epochs`` or ``max_time``, whichever comes first."""

    max_steps: int | None
    max_time: float | None

    @classmethod
    def from_config(cls, cfg: TrainConfig, steps_per_epoch: int) -> "Budget":
        """Fold ``max_epochs`` into a step limit (epochs x steps per epoch, rounded up)."""
        limits = [cfg.max_steps] if cfg.max_steps else []
        if cfg.max_epochs:
            limits.append(math.ceil(cfg.max_epochs * steps_per_epoch))
        return cls(min(limits) if limits else None, cfg.max_time)

    def progress(self, step: int, elapsed_s: float) -> float:
        """Fraction of the budget used: the larger of the step and time fractions."""
        fractions = [0.0]
        if self.max_steps:
            fractions.append(step / self.max_steps)
        if self.max_time:
            fractions.append(elapsed_s / self.max_time)
        return min(max(fractions), 1.0)

    def done(self, step: int, elapsed_s: float) -> bool:
        """True once any limit is reached."""
        return self.progress(step, elapsed_s) >= 1.0


def _noop(*args) -> None:
    return None


@dataclass
class Hooks:
    """What the loop calls; each gets the TrainState (and, where named, more)."""

    on_log: Callable[[TrainState, dict], None] = _noop      # metrics: loss, bpc, lr, ...
    on_eval: Callable[[TrainState], float] = lambda s: math.nan  # returns val loss (nats)
    on_checkpoint: Callable[[TrainState, Hidden | None], None] = _noop


def fit(model: CharLM, optimizer: torch.optim.Optimizer, train: TBPTTBatches,
        cfg: RunConfig, state: TrainState, hooks: Hooks, hidden: Hidden | None = None
        ) -> tuple[TrainState, Hidden | None]:
    """Run truncated BPTT until the budget is spent.

    Each step takes the next (B, T) chunk of every stream, carries the hidden state from the
    previous step (detached), and at the end of the train split wraps to the first chunk with
    the state reset. Losses are accumulated on the device and read back only every
    ``train.log_interval`` steps. The run ends with an evaluation; a time budget keeps the
    duration of the last evaluation free for it, so ``max_time`` counts evaluations too.

    Returns:
        The final TrainState and hidden state.
    """
    t = cfg.train
    budget = Budget.from_config(t, train.full_chunks)
    device = train.inputs.device
    loss_sum = torch.zeros((), device=device)
    norm_sum = torch.zeros((), device=device)
    since, tick = 0, time.perf_counter()
    start = tick - state.elapsed_s
    reserve_s = 0.0  # the last evaluation's duration, kept free for the final one

    def evaluate_now() -> float:
        nonlocal reserve_s
        eval_start = time.perf_counter()
        state.last_val_loss, state.last_eval_step = hooks.on_eval(state), state.step
        reserve_s = time.perf_counter() - eval_start
        return reserve_s
    bar = tqdm(total=budget.max_steps, initial=state.step, unit="step", dynamic_ncols=True,
               disable=(not t.progress) if t.progress is not None else None)
    try:
        while not budget.done(state.step, state.elapsed_s + reserve_s):
            if state.chunk >= train.full_chunks:
                state.epoch, state.chunk, hidden = state.epoch + 1, 0, None
            progress = budget.progress(state.step, state.elapsed_s + reserve_s)
            lr = lr_at(cfg.optim, state.step, progress)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = train.chunk(state.chunk)
            loss, norm, hidden = train_step(model, optimizer, x, y, hidden, cfg.optim.grad_clip)
            state.step, state.chunk, since = state.step + 1, state.chunk + 1, since + 1
            loss_sum += loss
            norm_sum += norm
            state.elapsed_s = time.perf_counter() - start
            last = budget.done(state.step, state.elapsed_s + reserve_s)
            if state.step % t.log_interval == 0 or last:
                now = time.perf_counter()
                metrics = {"loss": loss_sum.item() / since, "grad_norm": norm_sum.item() / since,
                           "lr": lr, "chars_per_s": since * x.numel() / (now - tick)}
                hooks.on_log(state, metrics)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}",
                                bpc=f"{metrics['loss'] / math.log(2):.3f}",
                                chars_s=f"{metrics['chars_per_s']:.0f}", lr=f"{lr:.2e}",
                                refresh=False)
                loss_sum.zero_(), norm_sum.zero_()
                since, tick = 0, time.perf_counter()
            if state.step % t.eval_interval == 0:
                tick += evaluate_now()  # chars/s counts training time only
            if state.step % t.checkpoint_interval == 0:
                hooks.on_checkpoint(state, hidden)
            bar.update(1)
            state.elapsed_s = time.perf_counter() - start
        if state.last_eval_step != state.step:
            evaluate_now()
        state.elapsed_s = time.perf_counter() - start
    finally:
        bar.close()
    return state, hidden
