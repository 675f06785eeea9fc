"""One training run, end to end: folders, preflight checks, model, reporting, checkpoints.

``checkpoints/<run>/`` receives ``config.yaml`` (before the first step), ``best.pt`` (lowest
val loss so far) and ``last.pt``; ``runs/<run>/`` receives the TensorBoard events. Under
``torchrun`` this is one rank of a DistributedDataParallel job (:mod:`charlm.system.distributed`);
only rank 0 writes files.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from charlm.config import RunConfig, dump_yaml
from charlm.data.corpus import Corpus
from charlm.data.layout import TBPTTBatches
from charlm.data.vocab import format_chars, vocab_from_payload
from charlm.errors import CheckpointError, Interrupted, shorten
from charlm.metrics import nats_to_bits
from charlm.models.growth import grow_vocab_rows
from charlm.models.lm import create_model
from charlm.models.state import map_hidden
from charlm.store.folders import BEST, CONFIG_FILE, LAST, RunPaths, claim_run
from charlm.system.device import resolve_device
from charlm.system.distributed import SINGLE, Dist, init_from_env, shutdown
from charlm.system.files import replacing
from charlm.system.memory import allocation_guard
from charlm.system.process import stop_on_signals
from charlm.system.rng import restore_rng, seed_everything
from charlm.system.tensorboard import open_writer
from charlm.training.loop import TrainState, fit
from charlm.training.preflight import (
    check_memory,
    check_precision,
    check_same_corpus,
    finalize_config,
    least_vocab_size,
    prepare_data,
    prepare_init_data,
    rows_of,
)
from charlm.training.reporting import EvalWatch, FinalEval, Reporter
from charlm.training.schedule import Budget, epoch_steps, lr_at
from charlm.training.step import make_optimizer, optim_lr

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What ``charlm train`` reports at the end (seconds, nats/char, bits/char)."""

    run_name: str
    steps: int
    elapsed_s: float
    val_loss: float
    val_bpc: float
    best_path: Path
    paused: bool = False  # stopped before the budget was spent; continue with --resume
    main: bool = True     # False on ranks other than 0, which report nothing
    unit: str = "char"    # data.unit: losses are per char or per byte
    session_s: float = 0.0  # training seconds of this command (elapsed_s counts every one)
    early_stopped: bool = False  # train.early_stop ended the run at its patience
    best_step: int = -1   # the step whose weights best.pt holds
    val_chars: int = 0    # targets val_loss scored: the whole val split for a finished run
    best_val_loss: float = math.nan  # best.pt's val loss, nats/char, over best_val_chars
    best_val_chars: int = 0
    last_path: Path | None = None  # the checkpoint val_loss belongs to (last.pt)


def train_run(cfg: RunConfig, resume: dict | None = None, resume_dir: Path | None = None,
              init: dict | None = None, allow_corpus_change: bool = False,
              watch: EvalWatch = EvalWatch(), grow_vocab: bool = False) -> TrainResult:
    """Train one run as ``cfg`` says and return its summary.

    Args:
        resume: a loaded checkpoint to continue exactly (its folder is ``resume_dir``).
        init: a loaded checkpoint whose weights and vocabulary start a new run (fine-tuning).
        allow_corpus_change: resume even if the corpus differs from the checkpoint's.
        grow_vocab: with ``init``, add the corpus's new characters (:mod:`~charlm.models.growth`).
        watch: who else watches the evaluations (a tune trial: it may add some, or stop).
    Raises:
        CharLMError: for bad data, devices or output folders (before anything is trained).
        Interrupted: after SIGINT or SIGTERM, once ``last.pt`` is saved.
        NumericalError: when updates stay non-finite; the last good checkpoint is kept.
    """
    dist, device = init_from_env(resolve_device(cfg.train.device))
    check_precision(cfg, device)
    check_memory(cfg, device, least_vocab_size(cfg, resume or init), dist)  # before the claim
    clean = False  # every rank got to the end (or to a stop they agreed on)
    try:
        with claim_run(finalize_config(cfg, dist), resume_dir if resume else None,
                       dist) as (cfg, paths):
            rows = rows_of(cfg, dist, resume is not None)
            if init:
                corpus, init = _init_data(cfg, init, grow_vocab, dist)
            else:
                corpus = prepare_data(cfg, vocab_from_payload(resume["vocab"]) if resume
                                      else None, dist)
            start = resume or init
            if resume and not allow_corpus_change:
                check_same_corpus(resume, corpus, cfg.data.corpus)
            check_memory(cfg, device, corpus.vocab.size, dist)
            with _memory_guard(cfg, device):
                state, final = _train(cfg, corpus, paths, start, resume is not None, device,
                                      rows, dist, watch)
        clean = True
    except Interrupted:
        clean = True
        raise
    finally:
        shutdown(dist, wait=clean)
    best = paths.checkpoints / BEST
    began = resume["state"]["elapsed_s"] if resume else 0.0
    return TrainResult(paths.name, state.step, state.elapsed_s, state.last_val_loss,
                       nats_to_bits(state.last_val_loss),
                       best if best.exists() else paths.checkpoints / LAST,
                       paused=not state.finished, main=dist.is_main, unit=cfg.data.unit,
                       session_s=state.elapsed_s - began, early_stopped=state.early_stopped,
                       best_step=state.best_step, **_final_figures(final, paths))


def _final_figures(final: FinalEval | None, paths: RunPaths) -> dict:
    """The TrainResult fields that the evaluation ending a run gives (none for a paused run)."""
    if final is None:
        return {}
    return {"val_chars": final.chars, "best_val_loss": final.best_loss,
            "best_val_chars": final.best_chars, "last_path": paths.checkpoints / LAST}


def _init_data(cfg: RunConfig, init: dict, grow: bool, dist: Dist) -> tuple[Corpus, dict]:
    """A fine-tuning run's corpus, and the checkpoint to start from: ``init``, or with
    ``grow`` and new characters in the text, ``init`` with its vocabulary and the weights'
    rows grown (:func:`~charlm.models.growth.grow_vocab_rows`)."""
    old = vocab_from_payload(init["vocab"])
    corpus, old_to_new, added = prepare_init_data(cfg, old, grow, "the --init-from checkpoint",
                                                  dist)
    if not added:
        if grow:
            logger.info("--grow-vocab: the corpus has no character the checkpoint lacks")
        return corpus, init
    model, bias = grow_vocab_rows(init["model"], old_to_new, corpus.vocab.size)
    logger.info("grew the vocabulary from %d to %d characters (added %s): new embedding rows "
                "are the mean of the old ones; new decoder rows have weights 0 and bias "
                "%.3f (the lowest old bias - ln %d), so they start rare; the optimizer starts "
                "afresh", old.size, corpus.vocab.size, format_chars(added), bias, old.size)
    return corpus, {**init, "model": model, "vocab": corpus.vocab.to_payload()}


def _memory_guard(cfg: RunConfig, device: torch.device):
    """:func:`allocation_guard` for training ``cfg`` on ``device``, naming its sizes."""
    m, t = cfg.model, cfg.train
    return allocation_guard(f"training on {device}",
                            f"batch_size {t.batch_size}, seq_len {t.seq_len}, hidden_size "
                            f"{m.hidden_size}, num_layers {m.num_layers}",
                            "lower --batch-size, --seq-len, --hidden-size or --num-layers")


def _build(cfg: RunConfig, vocab, start: dict | None, device: torch.device, dist: Dist):
    """The model (seeded, or a checkpoint's weights) on ``device``, and its optimizer. Ranks
    other than 0 then reseed, so that their dropout masks differ from rank 0's."""
    seed_everything(cfg.train.seed)
    model = create_model(cfg.model, vocab.size)
    if start:
        model.load_state_dict(start["model"])
    model.to(device)
    if dist.rank:
        seed_everything(cfg.train.seed + 1_000_003 * dist.rank)
    logger.info("model: %s %d x %d, %d parameters", cfg.model.cell, cfg.model.num_layers,
                cfg.model.hidden_size, model.num_parameters())
    return model, make_optimizer(model, cfg.optim)


def _restore(resume: dict, optimizer, device: torch.device, rows: tuple[int, int],
             dist: Dist = SINGLE):
    """Optimizer state, TrainState, this rank's rows of the carried hidden state and its RNG
    states. A checkpoint written by a different number of processes resumes with rank 0's
    RNG states (exact unless dropout is on, whose masks then differ).

    Raises:
        CheckpointError: if the optimizer entry does not fit the model (a group or a moment
            of another size: the file was edited, or is another model's).
    """
    _load_optimizer(optimizer, resume["optimizer"])
    hidden = resume.get("hidden")
    if hidden is not None:
        hidden = map_hidden(hidden, lambda h: h[:, rows[0]:rows[1]].contiguous().to(device))
    ranks = resume.get("rng_ranks") or [resume["rng"]]
    if len(ranks) != dist.world_size:
        logger.warning("checkpoint written by %d process(es), resumed by %d: random states "
                       "(dropout masks) will differ from an uninterrupted run", len(ranks),
                       dist.world_size)
    restore_rng(ranks[dist.rank] if len(ranks) == dist.world_size else ranks[0])
    return TrainState(**resume["state"]), hidden


def _load_optimizer(optimizer, saved: dict) -> None:
    """``optimizer.load_state_dict`` with its size checks made one line: torch raises a
    ValueError for a group of another size and takes moments of another shape silently, to
    fail at the first step."""
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        problem = shorten(str(exc), 120)
    else:
        problem = next((f"its {name} is {tuple(value.shape)} for a parameter of "
                        f"{tuple(p.shape)}"
                        for p, moments in optimizer.state.items() for name, value in
                        moments.items() if isinstance(value, torch.Tensor) and value.dim()
                        and value.shape != p.shape), None)
    if problem is not None:
        raise CheckpointError(f"the checkpoint's optimizer entry does not fit this model "
                              f"({problem}); start a new run from its weights with "
                              f"--init-from instead")


def _train(cfg: RunConfig, corpus: Corpus, paths: RunPaths, start: dict | None,
           resumed: bool, device: torch.device, rows: tuple[int, int], dist: Dist,
           watch: EvalWatch) -> tuple[TrainState, FinalEval | None]:
    """Build (or restore) the model, lay out the train split, open TensorBoard and run
    :func:`fit` under the signal handlers; then save ``last.pt`` and the hparams. Returns the
    state and the final evaluation (None when the run paused before its end)."""
    t = cfg.train
    logger.info("run %s: seed %d, device %s%s", paths.name, t.seed, device,
                f", resuming at step {start['state']['step']}" if resumed else "")
    model, optimizer = _build(cfg, corpus.vocab, start, device, dist)
    state, hidden = (_restore(start, optimizer, device, rows, dist) if resumed
                     else (TrainState(), None))
    if dist.is_main:  # once the checkpoint is known to resume: a refusal changes no file
        _save_config(cfg, paths)
    batches = TBPTTBatches(corpus.splits["train"], t.batch_size, t.seq_len, device, rows)
    if resumed:
        _say_where_resume_goes(cfg, batches.num_chunks, state, optim_lr(optimizer), paths.name)
    writer = (open_writer(paths.logs, purge_step=state.step + 1 if resumed else None)
              if dist.is_main else None)
    reporter = Reporter(model, optimizer, cfg, corpus, paths, writer, dist, watch)
    try:
        with stop_on_signals() as received:
            hooks = reporter.hooks(should_stop=lambda: received() is not None)
            state, hidden = fit(model, optimizer, batches, state, hooks, t, cfg.optim, hidden,
                                dist)
            signum = int(dist.agree(received() or 0)[0])  # any rank's signal stops them all
        _after_fit(reporter, state, hidden, signum, paths, dist,
                   batches.pairs_read(state.epoch, state.chunk))
    finally:
        if writer is not None:
            writer.close()
    return state, reporter.final


def _say_where_resume_goes(cfg: RunConfig, steps_per_epoch: int, state: TrainState,
                           last_lr: float, name: str) -> None:
    """Warn when a resumed run has nothing left to train (naming the limits it reached), or
    when its new budget makes the learning rate rise again."""
    budget = Budget.from_config(cfg.train, steps_per_epoch)
    if budget.done(state.step, state.elapsed_s):
        logger.warning("run %s is already at step %d (%.0f s): its budget is spent, nothing "
                       "to train; raise %s to continue", name, state.step, state.elapsed_s,
                       " and ".join(_spent_limits(cfg.train, steps_per_epoch, state)))
        return
    now = lr_at(cfg.optim, state.step, budget.progress(state.step, state.elapsed_s))
    if now > 1.5 * last_lr:
        logger.warning("run %s: the learning rate rises from %.3g (its last step) to %.3g: the "
                       "schedule is recomputed over the new budget, a warm restart (Loshchilov "
                       "& Hutter 2017). To go on at %.3g instead, resume with --set "
                       "optim.schedule=constant --lr %.3g", name, last_lr, now, last_lr, last_lr)


def _spent_limits(t, steps_per_epoch: int, state: TrainState) -> list[str]:
    """The options whose limit a run has reached (``t`` is its TrainConfig)."""
    epochs = epoch_steps(t.max_epochs, steps_per_epoch) if t.max_epochs else None
    spent = [option for option, value, limit in (
        ("--max-steps", state.step, t.max_steps), ("--max-epochs", state.step, epochs),
        ("--max-time", state.elapsed_s, t.max_time)) if limit and value >= limit]
    return spent or ["--max-steps / --max-time"]


def _save_config(cfg: RunConfig, paths: RunPaths) -> None:
    """Write the resolved config beside the checkpoints, before the first step.

    Raises:
        OutputError: if it cannot be written.
    """
    with replacing(paths.checkpoints / CONFIG_FILE, run_file=True,
                   advice="make room there, or choose another --checkpoint-dir") as fh:
        fh.write(dump_yaml(cfg))


def _after_fit(reporter: Reporter, state: TrainState, hidden, signum: int, paths: RunPaths,
               dist: Dist, chars: int) -> None:
    """Save ``last.pt`` (not twice for a stop right after a save; step 0 has none, a stop
    during the untrained model's val point), then stop on a signal or write the run's hparams.

    Raises:
        Interrupted: after a signal, with the command that continues the run.
    """
    cfg = reporter.cfg
    if not signum or state.step % cfg.train.checkpoint_interval or state.step == 0:
        reporter.on_checkpoint(state, hidden)
    if signum:
        how = "torchrun ... -m charlm" if dist.enabled else "charlm"
        raise Interrupted(f"stopped at step {state.step}; saved {paths.checkpoints / LAST}; "
                          f"continue with: {how} train --resume {paths.name}", signum)
    reporter.on_end(state, str(next(reporter.model.parameters()).device), chars)
