"""What a training run reports at its log points, evaluations and checkpoints: TensorBoard
scalars and samples, periodic evaluation, gate and gradient diagnostics, and checkpoint files.

:class:`Reporter` supplies the :class:`~charlm.training.Hooks` that :func:`~charlm.training.fit`
calls. Every rank calls every hook (evaluation and checkpoints hold collectives); only rank 0,
which alone has a ``writer``, writes anything.

TensorBoard tags, named so that a run opens on its val curve: Time Series sorts the tags,
groups them by the text before the first ``/`` and opens the first two groups, ``bpc`` and
``loss``, which hold ``bpc/val`` and ``loss/val`` alone:

* ``bpc/val`` ``loss/val`` (nats/char): the untrained model's figure at step 0, points at
  steps 1, 2, 4, 8, ... below ``train.eval_interval`` and past 1/2, 3/4, 7/8 and 15/16 of
  the budget (:func:`~charlm.training.loop.curve_due`), one every ``train.eval_interval``
  steps, each over about ``train.eval_max_chars`` val characters spread over the split, and
  the last one, at the final step, over the whole val split; so that TensorBoard's "ignore
  outliers" keeps every point on the chart (of a run long enough to leave its steep fall);
* ``lr``;
* ``run/parameters`` ``run/steps`` ``run/wall_s`` ``run/chars_per_s`` at the end (the HPARAMS
  table's metrics, with ``val/best_loss`` and ``val/best_bpc``);
* ``sample/text``: a sample at each evaluation, from the same prime and seed every time;
* ``time/eval_fraction`` (share of the run spent evaluating), ``time/step_ms``;
* ``train/loss`` (nats/char) ``train/bpc`` ``train/grad_norm`` (pre-clip)
  ``train/chars_per_s`` ``train/nonfinite_steps``, and ``train/grad/...`` every
  ``train.log_gradflow_interval`` steps;
* ``val/best_loss`` ``val/best_bpc`` ``val/elapsed_s`` ``val/stalled`` (text), and
  ``val/gates/...`` (gate saturation) at each evaluation.

The CUSTOM SCALARS tab overlays train and val; the PROJECTOR holds the character embedding
at the end of the run. Losses are in nats/char (nats/byte for a byte model).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import torch

from charlm.analysis.gates import gate_statistics
from charlm.analysis.gradflow import model_profile
from charlm.config import RunConfig
from charlm.data.corpus import Corpus
from charlm.data.vocab import id_labels
from charlm.evaluation.static import WARMUP, evaluate
from charlm.generation.prime import default_prime
from charlm.generation.sampling import sample_text
from charlm.metrics import describe_loss, nats_to_bits
from charlm.models.lm import CharLM
from charlm.models.state import map_hidden
from charlm.store.checkpoint import make_payload, save_checkpoint
from charlm.store.folders import BEST, LAST, RunPaths
from charlm.system.distributed import SINGLE, Dist
from charlm.system.rng import rng_state
from charlm.system.tensorboard import (
    comparable_hparams,
    log_embedding,
    log_gates,
    log_hparams,
    log_layout,
)
from charlm.training.loop import Hooks, TrainState

logger = logging.getLogger(__name__)

FLOW_KS = (0, 1, 5, 10, 25, 50, 100, 150, 200)  # grad/flow_k... tags logged in training


EARLY_SHARE = 4  # the early val curve points score 1/4 of train.eval_max_chars


@dataclass(frozen=True)
class EvalWatch:
    """Someone outside a run who watches its evaluations: a tune trial, which reports each
    val loss to its study and stops the run when the study's pruner says so.

    Attributes:
        eval_due: asked at every step: True for an evaluation now, besides those of
            ``train.eval_interval``.
        after_eval: called after each evaluation (``state.last_val_loss`` set, nats/char);
            True stops the run there as ``train.early_stop`` does: ``last.pt`` is saved, the
            hparams written, and the result says ``early_stopped``.
    Both are called on every rank and must answer alike on each.
    """

    eval_due: Callable[[TrainState], bool] = lambda state: False
    after_eval: Callable[[TrainState], bool] = lambda state: False


@dataclass(frozen=True)
class FinalEval:
    """The evaluation that ends a finished run (nats/char).

    Attributes:
        last_loss: the final weights' (``last.pt``) loss over the whole val split.
        chars: the targets that figure scored (the whole split).
        best_loss: ``best.pt``'s loss: ``last_loss`` when it holds the final weights, else
            the figure that chose it, over a sample of ``best_chars`` val targets.
        best_chars: the targets ``best_loss`` scored.
        best_step: the step whose weights ``best.pt`` holds.
    """

    last_loss: float
    chars: int
    best_loss: float
    best_chars: int
    best_step: int


class Reporter:
    """The hooks of one run.

    Args:
        model: the unwrapped module (what checkpoints save).
        corpus: the run's corpus: vocabulary, splits and digest.
        writer: a SummaryWriter on rank 0, None elsewhere.
    """

    def __init__(self, model: CharLM, optimizer, cfg: RunConfig, corpus: Corpus,
                 paths: RunPaths, writer, dist: Dist = SINGLE, watch: EvalWatch = EvalWatch()
                 ) -> None:
        self.model, self.optimizer, self.cfg, self.corpus = model, optimizer, cfg, corpus
        self.vocab, self.splits = corpus.vocab, corpus.splits
        self.paths, self.writer, self.dist, self.watch = paths, writer, dist, watch
        self.gradflow_step = 0  # step of the last gradient-flow log
        self.final: FinalEval | None = None  # set by the evaluation that ends the run
        self.score_s = 0.0  # seconds the last periodic evaluation spent scoring
        self.should_stop: Callable[[], bool] | None = None  # set by hooks()
        if dist.is_main:
            log_layout(writer)

    def hooks(self, should_stop=lambda: False) -> Hooks:
        """The :class:`Hooks` that :func:`~charlm.training.fit` calls."""
        self.should_stop = should_stop  # asked between evaluation batches too
        # a watched run (a tune trial) evaluates at its watch's points only: no curve points
        curve = self.on_curve if self.watch == EvalWatch() else None
        return Hooks(on_log=self.on_log, on_eval=self.on_eval, on_curve=curve,
                     on_checkpoint=self.on_checkpoint, should_stop=should_stop,
                     eval_due=self.watch.eval_due, on_final_eval=self.on_final_eval,
                     final_eval_s=self.final_eval_s)

    def on_log(self, state: TrainState, m: dict) -> None:
        """Train scalars, and the gradient diagnostics when their interval comes round."""
        if not self.dist.is_main:
            return
        w, step = self.writer, state.step
        w.add_scalar("train/loss", m["loss"], step)
        w.add_scalar("train/bpc", nats_to_bits(m["loss"]), step)
        w.add_scalar("lr", m["lr"], step)
        for key in ("grad_norm", "chars_per_s", "nonfinite_steps"):
            w.add_scalar(f"train/{key}", m[key], step)
        w.add_scalar("time/eval_fraction", m["eval_fraction"], step)
        w.add_scalar("time/step_ms", m["step_ms"], step)
        every = self.cfg.train.log_gradflow_interval
        if every and state.step // every > self.gradflow_step // every:
            self.gradflow_step = state.step
            self.log_gradients(m["grad_norms"], state.step)

    def score_sample(self, share: int = 1) -> tuple[float, int]:
        """The periodic evaluations' figure: ``(loss_nats, chars)`` over about
        ``train.eval_max_chars`` val characters spread over the split (sets :attr:`score_s`),
        or over ``1 / share`` of them."""
        t, began = self.cfg.train, time.perf_counter()
        stop = None if self.dist.enabled else self.should_stop
        scored = evaluate(self.model, self.splits["val"], t.eval_batch_size, t.seq_len,
                          t.eval_max_chars and max(t.eval_max_chars // share, 1),
                          dist=self.dist, stop=stop)
        if share == 1:  # the estimate of the final evaluation's time reads whole samples only
            self.score_s = time.perf_counter() - began
        return scored

    def on_curve(self, state: TrainState) -> None:
        """A point of the val curve only (:func:`~charlm.training.loop.curve_due`): the
        periodic evaluations' figure, written to ``loss/val`` and ``bpc/val``; best.pt, the
        patience count and the watch see the periodic evaluations alone. The points before
        the first periodic one, while the loss falls by tenths of a nat, score a quarter of the
        sample: they only shape the curve's start, and cost a quarter as much."""
        early = state.step < self.cfg.train.eval_interval
        loss, n = self.score_sample(EARLY_SHARE if early else 1)
        if self.dist.is_main:
            logger.debug("step %d: val curve point %.4f nats over %d", state.step, loss, n)
            self.writer.add_scalar("loss/val", loss, state.step)
            self.writer.add_scalar("bpc/val", nats_to_bits(loss), state.step)

    def on_eval(self, state: TrainState) -> None:
        """Score the val split (sets ``state.last_val_loss``), keep the best weights, and
        write the val scalars, gate statistics and a sample; the watch may stop the run."""
        t = self.cfg.train
        loss, n = self.score_sample()
        best = loss < state.best_val_loss
        state.last_val_loss, state.best_val_loss = loss, min(loss, state.best_val_loss)
        state.best_step = state.step if best else state.best_step
        state.evals_since_best = 0 if best else state.evals_since_best + 1
        stalled = t.patience and state.evals_since_best == t.patience
        stop = self.watch.after_eval(state)
        state.early_stopped = bool(stalled and t.early_stop or stop)
        if not self.dist.is_main:
            return
        unit = self.cfg.data.unit
        logger.info("step %d: val loss %s over %d %ss", state.step, describe_loss(loss, unit),
                    n, unit)
        if best:
            self.save(state, BEST)
        self.write_eval(state, loss)
        if stalled:
            self.warn_stalled(state)

    def on_final_eval(self, state: TrainState) -> None:
        """The evaluation that ends a run (sets :attr:`final`): the final weights over the
        ``train.eval_max_chars`` sample of the val split, as the periodic ones, to choose
        ``best.pt``, and over the whole val split, as ``charlm eval`` scores it."""
        t, val = self.cfg.train, self.splits["val"]
        stop = None if self.dist.enabled else self.should_stop
        sample, sample_n = self.score_sample()
        loss, n = (sample, sample_n) if sample_n == len(val) - 1 else evaluate(
            self.model, val, t.eval_batch_size, t.seq_len, None, dist=self.dist, stop=stop)
        if sample < state.best_val_loss or state.best_step < 0:  # the final weights are best
            state.best_step, state.best_val_loss, state.evals_since_best = state.step, sample, 0
            if self.dist.is_main:
                self.save(state, BEST)
        state.last_val_loss = loss
        best_loss, best_n = (loss, n) if state.best_step == state.step else \
            (state.best_val_loss, sample_n)
        self.final = FinalEval(loss, n, best_loss, best_n, state.best_step)
        if self.dist.is_main:
            unit = self.cfg.data.unit
            logger.info("step %d: val loss %s over the whole val split (%d %ss)", state.step,
                        describe_loss(loss, unit), n, unit)
            self.write_eval(state, loss)

    def final_eval_s(self, last_eval_s: float) -> float:
        """The final evaluation's seconds, from the last periodic one's (``last_eval_s``, of
        which :attr:`score_s` scored ``train.eval_max_chars`` and read ``WARMUP`` characters
        before each stream): that again, and a pass over the whole split."""
        t = self.cfg.train
        whole = max(len(self.splits["val"]) - 1, 1)
        warm = t.eval_batch_size * WARMUP  # read whatever the length scored
        return last_eval_s + (whole + warm) / (min(t.eval_max_chars, whole) + warm) * \
            self.score_s

    def warn_stalled(self, state: TrainState) -> None:
        """Say, in the log and in TensorBoard, that val loss stopped improving, since when,
        and where the best weights are."""
        t, unit = self.cfg.train, self.cfg.data.unit
        text = (f"val loss has not improved for {t.patience} evaluations: best "
                f"{describe_loss(state.best_val_loss, unit)} at step {state.best_step}, now "
                f"{describe_loss(state.last_val_loss, unit)} at step {state.step}; the model "
                f"is overfitting (or the learning rate is too high). "
                f"{self.paths.checkpoints / BEST} holds the step-{state.best_step} weights")
        stop = "; stopping (train.early_stop)" if t.early_stop else \
            "; --set train.early_stop=true stops a run here"
        logger.warning("%s%s", text, stop)
        self.writer.add_text("val/stalled", text + stop, state.step)

    def write_eval(self, state: TrainState, loss: float) -> None:
        """TensorBoard at an evaluation: val scalars, gate saturation, a seeded sample."""
        w, t, step = self.writer, self.cfg.train, state.step
        w.add_scalar("loss/val", loss, step)
        w.add_scalar("bpc/val", nats_to_bits(loss), step)
        w.add_scalar("val/elapsed_s", state.elapsed_s, step)
        w.add_scalar("val/best_loss", state.best_val_loss, step)
        w.add_scalar("val/best_bpc", nats_to_bits(state.best_val_loss), step)
        if t.log_gates:
            log_gates(w, gate_statistics(self.model, self.splits["val"], batch=4, length=128),
                      step)
        if t.sample_length:
            s = self.cfg.sample
            text = sample_text(self.model, self.vocab, default_prime(self.vocab),
                               t.sample_length, s.temperature, s.top_k, s.top_p, seed=0)
            w.add_text("sample/text", "```\n" + text + "\n```", step)  # keeps the layout
        w.flush()

    def on_checkpoint(self, state: TrainState, hidden) -> None:
        """Save ``last.pt`` with the carried state of every stream and every rank's RNG."""
        full = map_hidden(hidden, self.dist.gather_rows) if hidden is not None else None
        rng_ranks = self.dist.gather_objects(rng_state()) if self.dist.enabled else None
        if self.dist.is_main:
            self.save(state, LAST, full, rng_ranks)
            self.writer.flush()

    def save(self, state: TrainState, name: str, hidden=None, rng_ranks=None) -> None:
        """Write checkpoint ``name`` of this run, unless the weights are not finite."""
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            logger.error("step %d: weights are not finite; %s not saved", state.step, name)
            return
        payload = make_payload(self.model, self.optimizer, state.to_dict(), self.cfg,
                               self.vocab, hidden, rng_state(), rng_ranks, self.corpus.sha256)
        save_checkpoint(payload, self.paths.checkpoints / name)

    def log_gradients(self, norms: torch.Tensor | None, step: int) -> None:
        """TensorBoard ``train/grad/``: pre-clip norm histogram, fraction clipped,
        per-parameter norms (this step's, after clipping) and the gradient-flow profile
        ``train/grad/flow_k{k}``."""
        w, clip = self.writer, self.cfg.optim.grad_clip
        if norms is not None:
            w.add_histogram("train/grad/norm_preclip", norms, step)
            if clip > 0:
                w.add_scalar("train/grad/clipped_frac", (norms > clip).float().mean().item(),
                             step)
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                w.add_scalar(f"train/grad/param/{name}", p.grad.norm().item(), step)
        K = self.cfg.train.gradflow_horizon
        profile = model_profile(self.model, self.splits["train"], K, 8, seed=step)
        for k in sorted(set(FLOW_KS) | {K}):
            if k <= K:
                w.add_scalar(f"train/grad/flow_k{k:03d}", profile[k], step)

    def on_end(self, state: TrainState, device: str, chars: int) -> None:
        """At the end of a finished run: the character embedding in the PROJECTOR, and the
        hparams with the run's figures in the HPARAMS table (``chars``: characters trained
        on over the whole run, for ``run/chars_per_s``)."""
        if not self.dist.is_main:
            return
        log_embedding(self.writer, self.model.embedding.weight, id_labels(self.vocab),
                      state.step)
        final = {"run/parameters": self.model.num_parameters(), "run/steps": state.step,
                 "run/wall_s": state.elapsed_s,
                 "run/chars_per_s": chars / max(state.elapsed_s, 1e-9)}
        log_hparams(self.writer, comparable_hparams(self.cfg.to_dict(), device,
                                                    self.dist.world_size), final, state.step)

