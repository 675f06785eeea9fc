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
from charlm.distributed import SINGLE, Dist
from charlm.errors import CharLMError
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


@torch.inference_mode()
def evaluate(model: CharLM, ids: np.ndarray, batch_size: int, seq_len: int,
             max_chars: int | None = None, warmup: int = 512, dist: Dist = SINGLE
             ) -> tuple[float, int]:
    """Mean loss over a split, the hidden state carried through it.

    The split is laid out as in training (:class:`~charlm.data.TBPTTBatches`), each stream's
    state carried chunk to chunk; the few leftover pairs continue the last stream, so every
    target in ``ids[1:]`` is scored exactly once. So that the batch size hardly matters, each
    stream but the first starts from the state left by reading the ``warmup`` characters
    before it (read, not scored); the first stream starts from zeros, as a batch of 1 would.
    Under distributed training each rank scores its own block of streams and the sums are
    reduced, so the figure is the same as one process's.

    Args:
        model: the plain module (not DDP-wrapped: evaluation needs no gradient exchange).
        ids: (N,) encoded split (an array or a memory map).
        batch_size: streams; lowered when the split is shorter.
        max_chars: score only the first ``max_chars`` targets; None scores all.
        warmup: characters of context read before each stream (0 starts streams from zeros).
        dist: this process's place in a distributed job.
    Returns:
        ``(loss_nats, num_chars)``: mean nats/char and how many targets were scored.
    Raises:
        DataError: if the split has fewer than 2 characters.
    """
    if max_chars is not None:
        ids = ids[:max_chars + 1]
    if len(ids) < 2:
        raise DataError(f"the split to evaluate has {len(ids)} character(s); it needs at least "
                        f"2 (its size comes from data.train_frac and data.val_frac)")
    device = next(model.parameters()).device
    B = min(batch_size, len(ids) - 1)
    batches = TBPTTBatches(ids, B, seq_len, device, rows=dist.rows(B, exact=False))
    was_training = model.training
    model.eval()
    # float64 so that millions of summed nats lose nothing; MPS has no float64
    total = torch.zeros((), dtype=torch.float32 if device.type == "mps" else torch.float64,
                        device=device)
    hidden = _warm_state(model, batches, warmup)
    for j in range(batches.all_chunks if batches.num_rows else 0):
        x, y = batches.chunk(j)
        logits, hidden = model(x, hidden)
        total += loss_fn(logits, y, reduction="sum")
    if batches.tail_len:
        x, y = batches.tail()
        logits, _ = model(x, map_hidden(hidden, lambda h: h[:, -1:].contiguous())
                          if hidden is not None else None)
        total += loss_fn(logits, y, reduction="sum")
    model.train(was_training)
    pairs = len(ids) - 1
    return dist.sum_(total).item() / pairs, pairs


class NumericalError(CharLMError):
    """Training produced non-finite losses or gradients too many steps in a row."""


def _warm_state(model: CharLM, batches: TBPTTBatches, warmup: int) -> Hidden | None:
    """(L, B', H) state of each of these rows' streams after reading the ``W = min(warmup, S)``
    inputs before it; zeros for stream 0. None when there is nothing to warm."""
    W = min(warmup, batches.stream_len)
    if W == 0 or len(batches.before) == 0:
        return None
    before = batches.before[:, -W:].long()            # (rows with a predecessor, W)
    first = batches.first_row == 0
    _, hidden = model(torch.cat([before[:1], before]) if first else before)
    if not first:
        return hidden
    return map_hidden(hidden, lambda h: torch.cat([torch.zeros_like(h[:, :1]), h[:, 1:]], 1))


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
    nonfinite_steps: int = 0       # updates skipped for a non-finite loss or gradient norm
    finished: bool = False         # the budget is spent (not saved: a resumed run may add more)

    def to_dict(self) -> dict:
        """Plain dict for the checkpoint."""
        return {k: v for k, v in self.__dict__.items() if k != "finished"}


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
    on_eval: Callable[[TrainState], None] = _noop  # sets state.last_val_loss (nats/char)
    on_checkpoint: Callable[[TrainState, Hidden | None], None] = _noop
    should_stop: Callable[[], bool] = lambda: False          # e.g. SIGINT received


class _Skips:
    """Skipped (non-finite) updates, counted on the device.

    ``eager`` (the optimizer cannot skip on the device: CPU) reads the flag after every step,
    so a warning names each skipped step and a streak stops training at once. Otherwise (fused
    AdamW: CUDA) the counts are read only at log points, so no step waits for the host; a
    streak then stops training at the next log point, its skipped updates having changed
    nothing.
    """

    def __init__(self, device: torch.device, eager: bool) -> None:
        self.eager = eager
        self.streak = torch.zeros((), dtype=torch.long, device=device)
        self.worst = torch.zeros_like(self.streak)   # longest streak since the last check
        self.count = torch.zeros_like(self.streak)   # skipped since the last check

    def add(self, ok: torch.Tensor) -> None:
        self.streak = torch.where(ok, 0, self.streak + 1)
        self.worst = torch.maximum(self.worst, self.streak)
        self.count += ~ok

    def check(self, state: TrainState, cfg: RunConfig, lr: float) -> None:
        """Move the count into ``state``, warn, and raise after ``train.max_nonfinite`` in a row.

        Raises:
            NumericalError: with the step, lr, clip setting and what to try.
        """
        count = int(self.count)
        if not count:
            return
        worst, streak = int(self.worst), int(self.streak)
        state.nonfinite_steps += count
        self.count.zero_()
        self.worst.copy_(self.streak)
        logger.warning("step %d: %s; update%s skipped, hidden state reset (%d in a row)",
                       state.step, "non-finite loss or gradient norm" if self.eager else
                       f"{count} non-finite losses or gradient norms since the last log",
                       "" if count == 1 else "s", streak)
        if worst >= cfg.train.max_nonfinite:
            raise NumericalError(
                f"training stopped at step {state.step}: {worst} non-finite losses or gradient "
                f"norms in a row (lr {lr:.3g}, grad_clip {cfg.optim.grad_clip:g}); the last "
                f"good checkpoint is kept. Try a lower --lr, a --grad-clip of 1 or less, or a "
                f"shorter --seq-len")


class _Meter:
    """Loss and gradient-norm sums kept on the device between log points (no per-step sync)."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.norm_sum = torch.zeros((), device=device)
        self.good = torch.zeros((), device=device)
        self.steps, self.tick = 0, time.perf_counter()
        self.norms: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor, norm: torch.Tensor, ok: torch.Tensor) -> None:
        self.steps += 1
        self.good += ok  # a skipped step's NaN would poison the interval's mean
        self.loss_sum += torch.where(ok, loss, 0.0)
        self.norm_sum += torch.where(ok, norm, 0.0)
        self.norms.append(torch.where(ok, norm, float("nan")))

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` (an evaluation) out of the chars/s figure."""
        self.tick += seconds

    def read(self, chars_per_step: int, dist: Dist = SINGLE) -> dict:
        """Means over the interval (nats/char, norm), chars/s and the interval's pre-clip norms
        (a 1-D CPU tensor); then start a new interval. Under distributed training the loss is
        averaged over ranks (the norm is already the same everywhere) and ``chars_per_step``
        counts one rank's characters."""
        good, now = max(self.good.item(), 1.0), time.perf_counter()
        loss = dist.sum_(self.loss_sum.clone()).item() / dist.world_size
        out = {"loss": loss / good, "grad_norm": self.norm_sum.item() / good,
               "chars_per_s": self.steps * chars_per_step * dist.world_size
                / max(now - self.tick, 1e-9),
               "grad_norms": _finite(torch.stack(self.norms).float().cpu()) if self.norms
               else None}
        self.loss_sum.zero_(), self.norm_sum.zero_(), self.good.zero_()
        self.steps, self.tick, self.norms = 0, now, []
        return out


def _finite(values: torch.Tensor) -> torch.Tensor | None:
    values = values[torch.isfinite(values)]
    return values if len(values) else None


def fit(model: CharLM, optimizer: torch.optim.Optimizer, train: TBPTTBatches,
        cfg: RunConfig, state: TrainState, hooks: Hooks, hidden: Hidden | None = None,
        dist: Dist = SINGLE) -> tuple[TrainState, Hidden | None]:
    """Run truncated BPTT until the budget is spent.

    Each step takes the next (B, T) chunk of every stream, carries the hidden state from the
    previous step (detached), and at the end of the train split wraps to the first chunk with
    the state reset. Losses are accumulated on the device and read back only at log points
    (every ``train.log_interval`` steps, and at checkpoints). The run ends with an evaluation;
    a time budget keeps the duration of the last evaluation free for it, so ``max_time``
    counts evaluations too.

    Under distributed training ``train`` holds this rank's streams, the model is wrapped in
    DDP here, and the ranks agree once per step (over a CPU gloo group) on the clock and on
    stopping, so every rank uses the same learning rate and stops at the same step.

    Returns:
        The final TrainState and hidden state; the loop returns early, without the final
        evaluation, when ``hooks.should_stop()`` becomes true (on any rank) or at
        ``train.stop_at_step``.
    Raises:
        NumericalError: after ``train.max_nonfinite`` skipped updates in a row.
    """
    t = cfg.train
    budget = Budget.from_config(t, train.full_chunks)
    meter = _Meter(train.inputs.device)
    autocast = torch.bfloat16 if t.precision == "bf16" else None
    step_model = torch.compile(model) if t.compile else model  # checkpoints save ``model``
    step_model = dist.wrap(step_model, train.inputs.device)
    start = time.perf_counter() - state.elapsed_s
    skips = _Skips(train.inputs.device, eager=not skips_on_device(optimizer))
    reserve_s, lr = 0.0, optim_lr(optimizer)  # reserve: the last evaluation's duration

    def evaluate_now() -> None:
        nonlocal reserve_s
        began = time.perf_counter()
        hooks.on_eval(state)
        state.last_eval_step = state.step
        reserve_s = time.perf_counter() - began
        meter.pause(reserve_s)

    def log_now(chars: int) -> None:
        skips.check(state, cfg, lr)
        metrics = meter.read(chars, dist) | {"lr": lr, "nonfinite_steps": state.nonfinite_steps}
        hooks.on_log(state, metrics)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", bpc=f"{metrics['loss'] / math.log(2):.3f}",
                        chars_s=f"{metrics['chars_per_s']:.0f}", lr=f"{lr:.2e}", refresh=False)

    bar = tqdm(total=budget.max_steps, initial=state.step, unit="step", dynamic_ncols=True,
               disable=True if not dist.is_main else (not t.progress)
               if t.progress is not None else None)
    try:
        while True:
            elapsed, reserve_s, stop = dist.agree(time.perf_counter() - start, reserve_s,
                                                  float(hooks.should_stop()))
            state.elapsed_s = elapsed
            if budget.done(state.step, state.elapsed_s + reserve_s):
                break
            if stop or (t.stop_at_step and state.step >= t.stop_at_step):
                return state, hidden
            if state.chunk >= train.full_chunks:
                state.epoch, state.chunk, hidden = state.epoch + 1, 0, None
            lr = lr_at(cfg.optim, state.step,
                       budget.progress(state.step, state.elapsed_s + reserve_s))
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = train.chunk(state.chunk)
            loss, norm, hidden, ok = train_step(step_model, optimizer, x, y, hidden,
                                                cfg.optim.grad_clip, autocast,
                                                check_loss=not dist.enabled)
            state.step, state.chunk = state.step + 1, state.chunk + 1
            meter.add(loss, norm, ok)
            skips.add(ok)
            hidden = _reset_where_skipped(hidden, ok, skips.eager)
            if skips.eager:
                skips.check(state, cfg, lr)
            state.elapsed_s = time.perf_counter() - start
            saving = state.step % t.checkpoint_interval == 0
            if state.step % t.log_interval == 0 or saving:
                log_now(x.numel())
            if state.step % t.eval_interval == 0:
                evaluate_now()
            if saving:
                hooks.on_checkpoint(state, hidden)
            bar.update(1)
        if meter.steps:
            log_now(train.num_rows * t.seq_len)
        if state.last_eval_step != state.step:
            evaluate_now()
        state.elapsed_s = time.perf_counter() - start
        state.finished = True
    finally:
        bar.close()
    return state, hidden


def _reset_where_skipped(hidden: Hidden, ok: torch.Tensor, eager: bool) -> Hidden | None:
    """The carried state, or a fresh start after a skipped update (on the device unless
    ``eager``, where ``ok`` is already known on the host)."""
    if eager or hidden is None:
        return hidden if hidden is None or bool(ok) else None
    return map_hidden(hidden, lambda h: torch.where(ok, h, torch.zeros_like(h)))


def optim_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate the optimizer's first parameter group holds now."""
    return optimizer.param_groups[0]["lr"]
