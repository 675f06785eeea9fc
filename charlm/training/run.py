"""One training run, end to end: folders, seed, data, model, reporting, checkpoints.

``checkpoints/<run>/`` receives ``config.yaml`` (before the first step), ``best.pt`` (lowest
val loss so far) and ``last.pt``; ``runs/<run>/`` receives the TensorBoard events. Under
``torchrun`` this is one rank of a DistributedDataParallel job (:mod:`charlm.system.distributed`);
only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from charlm.analysis.gradflow import BURN_IN
from charlm.store.checkpoint import BEST, LAST
from charlm.config import RunConfig, save_yaml
from charlm.data import (
    ByteVocab,
    Corpus,
    TBPTTBatches,
    Vocab,
    check_trainable,
    load_corpus,
    vocab_from_payload,
)
from charlm.data.named import DOWNLOADS
from charlm.data.sources import canonical_spec
from charlm.system.distributed import SINGLE, Dist, init_from_env, shutdown
from charlm.errors import CharLMError, ConfigError, DataError, DistributedError, Interrupted
from charlm.store.folders import RunPaths, claim_run, with_name
from charlm.system.tensorboard import open_writer
from charlm.metrics import nats_to_bits, unit_noun
from charlm.models import create_model, map_hidden
from charlm.training.reporting import Reporter
from charlm.system.runtime import resolve_device, restore_rng, seed_everything, stop_on_signals
from charlm.training import Budget, TrainState, epoch_steps, fit, lr_at, make_optimizer, optim_lr

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


def train_run(cfg: RunConfig, resume: dict | None = None, resume_dir: Path | None = None,
              init: dict | None = None, allow_corpus_change: bool = False) -> TrainResult:
    """Train one run as ``cfg`` says and return its summary.

    Args:
        resume: a loaded checkpoint to continue exactly (its folder is ``resume_dir``).
        init: a loaded checkpoint whose weights and vocabulary start a new run (fine-tuning).
        allow_corpus_change: resume even if the corpus differs from the one the checkpoint
            recorded (otherwise refused).
    Raises:
        CharLMError: for bad data, devices or output folders (before anything is trained).
        Interrupted: after SIGINT or SIGTERM, once ``last.pt`` is saved.
        NumericalError: when updates stay non-finite; the last good checkpoint is kept.
    """
    dist, device = init_from_env(resolve_device(cfg.train.device))
    clean = False  # every rank got to the end (or to a stop they agreed on)
    try:
        with _claimed(finalize_config(cfg, dist), resume_dir if resume else None,
                      dist) as (cfg, paths):
            rows = _rows(cfg, dist, resume is not None)
            start = resume or init
            corpus = prepare_data(cfg, vocab_from_payload(start["vocab"]) if start else None,
                                  dist)
            if resume and not allow_corpus_change:
                check_same_corpus(resume, corpus, cfg.data.corpus)
            state = _train(cfg, corpus, paths, start, resume is not None, device, rows, dist)
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
                       best_step=state.best_step)


def finalize_config(cfg: RunConfig, dist: Dist = SINGLE) -> RunConfig:
    """Fill what a run must record to be repeatable: the seed drawn and a corpus spec that
    works from any folder. Under distributed training rank 0's draw is used everywhere."""
    t = cfg.train
    seed = dist.gather_objects(t.seed if t.seed is not None else secrets.randbelow(2**31))[0]
    return dataclasses.replace(
        cfg, train=dataclasses.replace(t, seed=seed),
        data=dataclasses.replace(cfg.data, corpus=canonical_spec(cfg.data.corpus)))


@contextlib.contextmanager
def _claimed(cfg: RunConfig, resume_dir: Path | None, dist: Dist
             ) -> Iterator[tuple[RunConfig, RunPaths]]:
    """Rank 0 claims the run's folders (:func:`~charlm.store.folders.claim_run`); every rank gets
    the run's final name and paths, or rank 0's error."""
    with contextlib.ExitStack() as stack:
        paths, error = None, None
        if dist.is_main:
            try:
                paths = stack.enter_context(claim_run(cfg, resume_dir))
            except CharLMError as exc:
                error = str(exc)
        name, error = dist.gather_objects((paths.name if paths else None, error))[0]
        if error:
            raise CharLMError(error)
        cfg = with_name(cfg, name)
        if paths is None:
            paths = stack.enter_context(claim_run(cfg, resume_dir, write=False))
        yield cfg, paths


def prepare_data(cfg: RunConfig, vocab: Vocab | ByteVocab | None = None, dist: Dist = SINGLE
                 ) -> Corpus:
    """The run's corpus (:func:`~charlm.data.load_corpus`), checked for one training step
    and one evaluation.

    Under distributed training the first process of each machine encodes while the others
    wait, then every process reads the cache.

    Raises:
        DataError: for unreadable text, characters outside ``vocab`` (listed), or splits too
            short for one training step or one evaluation.
    """
    corpus, error = None, None
    if dist.local_rank == 0:
        try:
            corpus = load_corpus(cfg.data, vocab, progress=cfg.train.progress)
        except DataError as exc:
            error = str(exc)
    errors = [e for e in dist.gather_objects(error) if e]  # also: the others wait here
    if errors:
        raise DataError(errors[0])  # every rank reports the encoder's error
    corpus = corpus or load_corpus(cfg.data, vocab, progress=False)
    s, unit = corpus.splits, cfg.data.unit
    published = DOWNLOADS.get(cfg.data.corpus)
    if published and published.unit != unit:
        logger.warning("%s's published results model %ss: --set data.unit=%s compares with "
                       "them", cfg.data.corpus, published.unit, published.unit)
    check_trainable(len(s["train"]), cfg.train.batch_size, cfg.train.seq_len)
    if len(s["val"]) < 2:
        raise DataError(f"the val split has {len(s['val'])} {unit_noun(unit)}(s) of "
                        f"{len(corpus.ids)}; raise data.val_frac or give a longer corpus")
    check_late_values(cfg, corpus)
    logger.info("vocab_size %d (%s); split sizes train %d, val %d, test %d", corpus.vocab.size,
                unit, len(s["train"]), len(s["val"]), len(s["test"]))
    return corpus


def check_late_values(cfg: RunConfig, corpus: Corpus) -> None:
    """Config values that only the data can check, checked before the first step rather than
    at the evaluation or log point that would use them.

    Raises:
        ConfigError: naming the key and how to set it.
    """
    s, t, V = cfg.sample, cfg.train, corpus.vocab.size
    if s.top_k is not None and s.top_k > V:
        raise ConfigError(f"sample.top_k is {s.top_k} but the vocabulary has {V} entries; "
                          f"lower it with --set sample.top_k=N (N <= {V})")
    need = BURN_IN + t.gradflow_horizon + 4
    if t.log_gradflow_interval and len(corpus.splits["train"]) < need:
        raise ConfigError(f"train.gradflow_horizon {t.gradflow_horizon} needs a train split of "
                          f"{need} ids, this one has {len(corpus.splits['train'])}; lower it "
                          f"with --set train.gradflow_horizon=K")


def check_same_corpus(ckpt: dict, corpus: Corpus, spec: str) -> None:
    """Refuse to resume on a corpus whose bytes differ from those the checkpoint recorded
    (the val figures and the data position would no longer mean the same).

    Raises:
        DataError: naming both digests and the option that accepts the change.
    """
    saved = (ckpt.get("corpus") or {}).get("sha256")
    if saved is None:
        logger.warning("this checkpoint records no corpus digest (written before charlm "
                       "recorded one): cannot check that %s is unchanged", spec)
    elif saved != corpus.sha256:
        raise DataError(f"the corpus {spec} changed since this run's checkpoint (sha256 "
                        f"{saved[:16]}... then, {corpus.sha256[:16]}... now); resuming would "
                        f"mix two texts' figures: start a new run with --init-from, or pass "
                        f"--allow-corpus-change to resume on the new text on purpose")


def _rows(cfg: RunConfig, dist: Dist, resuming: bool) -> tuple[int, int]:
    """This rank's streams; on resume the batch size is fixed, so the advice is about the
    number of processes."""
    B, W = cfg.train.batch_size, dist.world_size
    if resuming and B % W:
        fits = [n for n in range(1, B + 1) if B % n == 0]
        raise DistributedError(f"run {cfg.train.run_name} has train.batch_size {B}, which a "
                               f"resumed run keeps; resume it with a number of processes that "
                               f"divides {B} ({', '.join(map(str, fits[:8]))}), not {W}")
    return dist.rows(B)


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
    RNG states (exact unless dropout is on, whose masks then differ)."""
    optimizer.load_state_dict(resume["optimizer"])
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


def _train(cfg: RunConfig, corpus: Corpus, paths: RunPaths, start: dict | None,
           resumed: bool, device: torch.device, rows: tuple[int, int], dist: Dist
           ) -> TrainState:
    """Build (or restore) the model, lay out the train split, open TensorBoard and run
    :func:`fit` under the signal handlers; then save ``last.pt`` and the hparams."""
    t = cfg.train
    if dist.is_main:
        _save_config(cfg, paths)
    logger.info("run %s: seed %d, device %s%s", paths.name, t.seed, device,
                f", resuming at step {start['state']['step']}" if resumed else "")
    model, optimizer = _build(cfg, corpus.vocab, start, device, dist)
    state, hidden = (_restore(start, optimizer, device, rows, dist) if resumed
                     else (TrainState(), None))
    batches = TBPTTBatches(corpus.splits["train"], t.batch_size, t.seq_len, device, rows)
    if resumed:
        _say_where_resume_goes(cfg, batches.num_chunks, state, optim_lr(optimizer), paths.name)
    writer = (open_writer(paths.logs, purge_step=state.step + 1 if resumed else None)
              if dist.is_main else None)
    reporter = Reporter(model, optimizer, cfg, corpus, paths, writer, dist)
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
    return state


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
        CharLMError: if it cannot be written.
    """
    try:
        save_yaml(cfg, paths.checkpoints / "config.yaml")
    except OSError as exc:
        raise CharLMError(f"cannot write {paths.checkpoints / 'config.yaml'}: "
                          f"{exc.strerror or exc}; choose another folder with "
                          f"--checkpoint-dir") from None


def _after_fit(reporter: Reporter, state: TrainState, hidden, signum: int, paths: RunPaths,
               dist: Dist, chars: int) -> None:
    """Save ``last.pt`` (not twice for a stop right after a save), then stop on a signal or
    write the run's hparams.

    Raises:
        Interrupted: after a signal, with the command that continues the run.
    """
    cfg = reporter.cfg
    if not signum or state.step % cfg.train.checkpoint_interval:
        reporter.on_checkpoint(state, hidden)
    if signum:
        how = "torchrun ... -m charlm" if dist.enabled else "charlm"
        raise Interrupted(f"stopped at step {state.step}; saved {paths.checkpoints / LAST}; "
                          f"continue with: {how} train --resume {paths.name}", signum)
    reporter.on_end(state, str(next(reporter.model.parameters()).device), chars)
