"""The truncated-BPTT loop: steps until the budget is spent, calling hooks to log, evaluate
and checkpoint.

The loop is generic: what happens at a log, evaluation or checkpoint is given as
:class:`Hooks` (:mod:`charlm.training.reporting` supplies them for a run), so the loop has no file,
TensorBoard or evaluation code.

Shape legend: B batch (streams), T time steps, L layers, H hidden size.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from charlm.config import OptimConfig, TrainConfig
from charlm.data.layout import TBPTTBatches
from charlm.evaluation.static import EvaluationStopped
from charlm.metrics import nats_to_bits
from charlm.models.lm import CharLM
from charlm.models.state import Hidden, map_hidden
from charlm.system.distributed import SINGLE, Dist
from charlm.system.threads import ThreadShare
from charlm.training.schedule import Budget, lr_at
from charlm.training.stats import IntervalStats
from charlm.training.step import optim_lr, skips_on_device, train_step

logger = logging.getLogger(__name__)


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
    best_step: int = -1            # the step of best_val_loss
    evals_since_best: int = 0      # evaluations since then (train.patience)
    finished: bool = False         # the budget is spent (not saved: a resumed run may add more)
    early_stopped: bool = False    # train.early_stop ended the run (not saved)

    def to_dict(self) -> dict:
        """Plain dict for the checkpoint."""
        return {k: v for k, v in self.__dict__.items() if k not in ("finished", "early_stopped")}


def _noop(*args) -> None:
    return None


@dataclass
class Hooks:
    """What the loop calls; each gets the TrainState (and, where named, more)."""

    on_log: Callable[[TrainState, dict], None] = _noop      # metrics: loss, lr, chars/s, ...
    on_eval: Callable[[TrainState], None] = _noop  # sets state.last_val_loss (nats/char)
    # a point of the val curve only, at the steps of curve_due: scored and logged, nothing else
    on_curve: Callable[[TrainState], None] | None = None
    on_checkpoint: Callable[[TrainState, Hidden | None], None] = _noop
    should_stop: Callable[[], bool] = lambda: False          # e.g. SIGINT received
    # an evaluation now, besides those of train.eval_interval (a tune trial's time points);
    # it must answer alike on every rank
    eval_due: Callable[[TrainState], bool] = lambda state: False
    # the evaluation that ends a finished run (it may score more than the periodic ones), and
    # its seconds estimated from the last evaluation's, kept free for it by a time budget
    on_final_eval: Callable[[TrainState], None] | None = None
    final_eval_s: Callable[[float], float] = lambda last_eval_s: last_eval_s


END_MARKS = (0.5, 0.75, 0.875, 0.9375)  # budget fractions whose first step gets a curve point


def curve_due(step: int, eval_interval: int) -> bool:
    """True at steps 0, 1, 2, 4, 8, ... below ``eval_interval``: the val curve's points
    before its first periodic evaluation (the first steps past each of :data:`END_MARKS` get
    one too). TensorBoard's "ignore outliers" (on by default) fits a chart's y axis to the
    5th-95th percentile of the smoothed points (smoothing 0.6), so a curve whose first point
    stands alone, far above the next, or whose smoothed end lags far above its last point, is
    drawn cut; these points start it and end it with points close together: the untrained
    model's loss (about ln(vocab_size) nats) and the warm-up's slow first steps, and the
    schedule's slow last ones."""
    return step < eval_interval and step & (step - 1) == 0


def fit(model: CharLM, optimizer: torch.optim.Optimizer, batches: TBPTTBatches,
        state: TrainState, hooks: Hooks, train: TrainConfig, optim: OptimConfig,
        hidden: Hidden | None = None, dist: Dist = SINGLE) -> tuple[TrainState, Hidden | None]:
    """Run truncated BPTT until the budget is spent.

    Each step takes the next (B, T) chunk of every stream, carries the hidden state from the
    previous step (detached), and at the end of the train split wraps to the first chunk with
    the state reset. Losses are accumulated on the device and read back only at log points
    (every ``train.log_interval`` steps, and at checkpoints). The run ends with an evaluation
    (``hooks.on_final_eval``, else ``hooks.on_eval``); a time budget keeps its duration free
    (``hooks.final_eval_s`` of the last evaluation's), so ``max_time`` counts evaluations
    too.

    Under distributed training ``batches`` holds this rank's streams, the model is wrapped in
    DDP here, and the ranks agree once per step (over a CPU gloo group) on the clock and on
    stopping, so every rank uses the same learning rate and stops at the same step.

    Returns:
        The final TrainState and hidden state; the loop returns early, without the final
        evaluation, when ``hooks.should_stop()`` becomes true (on any rank) or at
        ``train.stop_at_step``.
    Raises:
        NumericalError: after ``train.max_nonfinite`` skipped updates in a row.
    """
    loop = _Loop(model, optimizer, batches, state, hooks, train, optim, dist)
    with loop.bar, logging_redirect_tqdm(), loop.cpu_share():
        if state.step == 0 and hooks.on_curve is not None:
            loop.evaluate(hooks.on_curve, periodic=False)  # the untrained model
        while not loop.budget_spent():
            if loop.paused():
                return state, hidden
            hidden = loop.step(hidden)
            loop.periodic(hidden)
        loop.finish()
    return state, hidden


class _Loop:
    """The moving parts of one :func:`fit` call: clock, budget, statistics, progress bar."""

    def __init__(self, model, optimizer, batches: TBPTTBatches, state: TrainState,
                 hooks: Hooks, train: TrainConfig, optim: OptimConfig, dist: Dist) -> None:
        self.optimizer, self.batches, self.state, self.hooks = optimizer, batches, state, hooks
        self.train, self.optim, self.dist = train, optim, dist
        device = batches.inputs.device
        self.budget = Budget.from_config(train, batches.num_chunks)
        self.autocast = torch.bfloat16 if train.precision == "bf16" else None
        step_model = torch.compile(model) if train.compile else model  # checkpoints: ``model``
        self.step_model = dist.wrap(step_model, device)
        self.stats = IntervalStats(device, eager=not skips_on_device(optimizer))
        self.start = time.perf_counter() - state.elapsed_s
        self.reserve_s, self.lr = 0.0, optim_lr(optimizer)  # reserve: last evaluation's time
        self.end_marks, self.end_due = self.marks_passed(state.elapsed_s), False
        self.point_step = -1  # step of the last val point (an evaluation or a curve point)
        self.eval_s = 0.0  # seconds this call spent evaluating (time/eval_fraction)
        self.began = time.perf_counter()
        self.stop = False
        self.threads = ThreadShare() if device.type == "cpu" and train.share_cpu else None
        self.bar = _Progress(self.budget, state, disable=True if not dist.is_main else
                             (not train.progress) if train.progress is not None else None)

    @contextlib.contextmanager
    def cpu_share(self) -> Iterator[None]:
        """On a CPU, share it fairly with other busy processes (:class:`ThreadShare`)."""
        try:
            yield
        finally:
            if self.threads is not None:
                self.threads.restore()

    def budget_spent(self) -> bool:
        """Agree with the other ranks on the clock and on stopping; True once the budget
        (with time kept for the final evaluation) is spent."""
        elapsed, self.reserve_s, stop = self.dist.agree(
            time.perf_counter() - self.start, self.reserve_s, float(self.hooks.should_stop()))
        self.state.elapsed_s, self.stop = elapsed, bool(stop)
        passed = self.marks_passed(elapsed)  # on the agreed clock: alike on every rank
        # a mark passed during an evaluation at this step is its point already
        self.end_due = passed > self.end_marks and self.point_step != self.state.step
        self.end_marks = passed
        return self.state.early_stopped or self.budget.done(self.state.step,
                                                            elapsed + self.reserve_s)

    def marks_passed(self, elapsed_s: float) -> int:
        """How many of :data:`END_MARKS` the schedule has passed."""
        where = self.budget.progress(self.state.step, elapsed_s + self.reserve_s)
        return sum(where >= mark for mark in END_MARKS)

    def paused(self) -> bool:
        """A signal arrived (on any rank), or ``train.stop_at_step`` is reached."""
        at = self.train.stop_at_step
        return self.stop or bool(at and self.state.step >= at)

    def step(self, hidden: Hidden | None) -> Hidden | None:
        """One optimizer update on the next chunk; returns the carried state."""
        s = self.state
        if self.threads is not None:
            self.threads.check()
        if s.chunk >= self.batches.num_chunks:  # the epoch is over: wrap, reset the state
            s.epoch, s.chunk, hidden = s.epoch + 1, 0, None
        self.lr = lr_at(self.optim, s.step,
                        self.budget.progress(s.step, s.elapsed_s + self.reserve_s))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        x, y = self.batches.chunk(s.chunk)
        loss, norm, hidden, ok = train_step(self.step_model, self.optimizer, x, y, hidden,
                                            self.optim.grad_clip, self.autocast,
                                            check_loss=not self.dist.enabled)
        self.stats.add(loss, norm, ok, self.batches.pairs_in(s.chunk))
        s.step, s.chunk = s.step + 1, s.chunk + 1
        if self.stats.eager:
            self.check_skips()
        s.elapsed_s = time.perf_counter() - self.start
        self.bar.advance(s)
        return _reset_where_skipped(hidden, ok, self.stats.eager)

    def periodic(self, hidden: Hidden | None) -> None:
        """Log, evaluate and checkpoint when their intervals come round."""
        t, step = self.train, self.state.step
        saving = step % t.checkpoint_interval == 0
        if step % t.log_interval == 0 or saving:
            self.log()
        due = self.hooks.eval_due(self.state)  # asked at every step: it may keep count
        if due or step % t.eval_interval == 0 and not self.ends_here():
            self.evaluate()
        elif self.hooks.on_curve is not None and (curve_due(step, t.eval_interval) or
                                                  self.end_due) and not self.last_step():
            self.evaluate(self.hooks.on_curve, periodic=False)
        if saving:
            self.hooks.on_checkpoint(self.state, hidden)

    def last_step(self) -> bool:
        """True when the budget is spent at this step: the run's last evaluation follows."""
        return self.budget.done(self.state.step, self.state.elapsed_s + self.reserve_s)

    def ends_here(self) -> bool:
        """True when the run ends at this step with a final evaluation of its own, which
        makes the interval's evaluation redundant (and would give TensorBoard two points at
        one step)."""
        return self.hooks.on_final_eval is not None and self.last_step()

    def finish(self) -> None:
        """The last log and evaluation of a run whose budget is spent."""
        if self.stats.steps:
            self.log()
        if self.hooks.on_final_eval is not None:
            self.evaluate(self.hooks.on_final_eval)
        elif self.state.last_eval_step != self.state.step:
            self.evaluate()
        if self.stop:  # a stop during the final evaluation: the run ends as a stopped one
            return
        self.state.elapsed_s = time.perf_counter() - self.start
        self.state.finished = True

    def check_skips(self) -> None:
        self.stats.check_skips(self.state, self.lr, self.train.max_nonfinite,
                               self.optim.grad_clip)

    def log(self) -> None:
        self.check_skips()
        metrics = self.stats.read(self.dist) | {
            "lr": self.lr, "nonfinite_steps": self.state.nonfinite_steps,
            "eval_fraction": self.eval_s / max(time.perf_counter() - self.began, 1e-9)}
        self.hooks.on_log(self.state, metrics)
        self.bar.show(self.state, metrics)

    def evaluate(self, hook: Callable[[TrainState], None] | None = None,
                 periodic: bool = True) -> None:
        """Evaluate (``periodic``: an evaluation the state records, not a curve point); a
        stop asked for meanwhile abandons it (the next checkpoint does not need it), so that
        SIGTERM ends the run within a container's grace period."""
        began = time.perf_counter()
        try:
            (hook or self.hooks.on_eval)(self.state)
        except EvaluationStopped as exc:
            logger.warning("step %d: evaluation left unfinished (%s): a stop was asked for",
                           self.state.step, exc)
            self.stop = True
            return
        if periodic:
            self.state.last_eval_step = self.state.step
        self.point_step = self.state.step
        took = time.perf_counter() - began
        self.reserve_s = self.hooks.final_eval_s(took)
        self.eval_s += took
        self.stats.pause(took)


class _Progress:
    """The tqdm bar: over steps when the budget has a step limit; over seconds, with the
    percentage and the time left, when only a time budget stops the run. Steps, loss, bpc,
    chars/s and the rate are its postfix either way."""

    def __init__(self, budget: Budget, state: TrainState, disable: bool | None) -> None:
        self.by_time = not budget.max_steps and bool(budget.max_time)
        if self.by_time:
            self.bar = tqdm(total=budget.max_time, initial=state.elapsed_s, unit="s",
                            dynamic_ncols=True, disable=disable,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
                                       "[{elapsed}<{remaining}{postfix}]")
        else:
            self.bar = tqdm(total=budget.max_steps, initial=state.step, unit="step",
                            dynamic_ncols=True, disable=disable)

    def advance(self, state: TrainState) -> None:
        """Move to ``state``'s step (or its clock)."""
        if self.by_time:
            self.bar.update(min(state.elapsed_s, self.bar.total) - self.bar.n)
        else:
            self.bar.update(1)

    def show(self, state: TrainState, m: dict) -> None:
        """Put the latest log point's figures in the postfix."""
        self.bar.set_postfix(step=state.step, loss=f"{m['loss']:.3f}",
                             bpc=f"{nats_to_bits(m['loss']):.3f}",
                             chars_s=f"{m['chars_per_s']:.0f}", lr=f"{m['lr']:.2e}",
                             refresh=False)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def _reset_where_skipped(hidden: Hidden | None, ok: torch.Tensor, eager: bool
                         ) -> Hidden | None:
    """The carried state, or a fresh start after a skipped update (on the device unless
    ``eager``, where ``ok`` is already known on the host)."""
    if eager or hidden is None:
        return hidden if hidden is None or bool(ok) else None
    return map_hidden(hidden, lambda h: torch.where(ok, h, torch.zeros_like(h)))
