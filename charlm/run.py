"""One training run, end to end: folders, seed, data, model, TensorBoard, checkpoints.

``checkpoints/<run>/`` receives ``config.yaml`` (before the first step), ``best.pt`` (lowest
val loss so far) and ``last.pt``; ``runs/<run>/`` receives the TensorBoard events.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charlm import checkpoint as ckpt_io
from charlm.config import RunConfig, save_yaml
from charlm.corpora import DataError, canonical_spec
from charlm.corpus_cache import encode_corpus
from charlm.data import (ByteVocab, TBPTTBatches, Vocab, check_trainable, split_ids,
                         vocab_from_payload)
from charlm.distributed import SINGLE, Dist, DistributedError, init_from_env, shutdown
from charlm.errors import CharLMError
from charlm.inspection import gate_statistics
from charlm.log import log_gates, log_gradients, log_hparams, open_writer
from charlm.metrics import nats_to_bits
from charlm.models import CharLM, create_model, map_hidden
from charlm.resume import Interrupted, restore_rng, rng_state, stop_on_signals
from charlm.sampling import default_prime, sample_text
from charlm.training import Budget, Hooks, TrainState, evaluate, fit, make_optimizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes: its checkpoint folder and its TensorBoard folder."""

    name: str
    checkpoints: Path
    logs: Path


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


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu.

    Raises:
        CharLMError: if the named device is not available here.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CharLMError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CharLMError("device cuda was asked for but this torch sees no CUDA GPU; "
                          "use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CharLMError("device mps was asked for but is not available; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (CPU and every CUDA device)."""
    random.seed(seed)
    torch.manual_seed(seed)


def prepare_paths(cfg: RunConfig, resume_dir: Path | None = None, write: bool = True
                  ) -> RunPaths:
    """Create the run's folders, refusing to overwrite a run that already has checkpoints.

    Args:
        resume_dir: the folder of the checkpoint a resumed run continues; it is reused.
        write: create the folders (False: only check, as ranks other than 0 do).
    Raises:
        CharLMError: if the folders cannot be written, or the run name is taken.
    """
    t = cfg.train
    paths = RunPaths(t.run_name, resume_dir or Path(t.checkpoint_dir) / t.run_name,
                     Path(t.log_dir) / t.run_name)
    taken = any((paths.checkpoints / f).exists() for f in (ckpt_io.BEST, ckpt_io.LAST))
    if taken and resume_dir is None:
        raise CharLMError(f"run '{t.run_name}' already has checkpoints in {paths.checkpoints}; "
                          f"continue it with --resume {t.run_name}, or choose another "
                          f"--run-name (nothing was overwritten)")
    for folder, option in () if not write else ((paths.checkpoints, "--checkpoint-dir"), (paths.logs, "--log-dir")):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".charlm-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CharLMError(f"cannot write to {folder}: {exc.strerror or exc}; choose "
                              f"another folder with {option}") from None
    return paths


def prepare_data(cfg: RunConfig, vocab: Vocab | ByteVocab | None = None, dist: Dist = SINGLE
                 ) -> tuple[Vocab | ByteVocab, dict[str, np.ndarray]]:
    """Encode the corpus (or reuse its cached encoding); return the vocabulary and the
    train/val/test ids as memory-mapped arrays.

    Under distributed training the first process of each machine encodes while the others
    wait, then every process reads the cache.

    Args:
        vocab: a checkpoint's vocabulary to encode with (resume, fine-tuning); None builds one
            from the text.
    Raises:
        DataError: for unreadable text, characters outside ``vocab`` (listed), or splits too
            short for one training step or one evaluation.
    """
    d = cfg.data
    encode = functools.partial(encode_corpus, d.corpus, d.data_dir, d.cache_dir, d.unit,
                               d.encoding, d.errors, vocab)
    corpus, error = None, None
    if dist.local_rank == 0:
        try:
            corpus = encode(progress=cfg.train.progress)
        except DataError as exc:
            error = str(exc)
    errors = [e for e in dist.gather_objects(error) if e]  # also: the others wait here
    if errors:
        raise DataError(errors[0])  # every rank reports the encoder's error
    corpus = corpus or encode(progress=False)
    splits = split_ids(corpus.ids, d.train_frac, d.val_frac)
    check_trainable(len(splits["train"]), cfg.train.batch_size, cfg.train.seq_len)
    if len(splits["val"]) < 2:
        noun = "character" if d.unit == "char" else "byte"
        raise DataError(f"the val split has {len(splits['val'])} {noun}(s) of {len(corpus.ids)}; "
                        f"raise data.val_frac or give a longer corpus")
    logger.info("vocab_size %d (%s); split sizes train %d, val %d, test %d", corpus.vocab.size,
                d.unit, len(splits["train"]), len(splits["val"]), len(splits["test"]))
    return corpus.vocab, splits


def make_payload(model: CharLM, optimizer, state: TrainState, cfg: RunConfig, vocab,
                 hidden=None, rng_ranks: list | None = None) -> dict:
    """The checkpoint dict (see :mod:`charlm.checkpoint`), with what exact resume needs.

    Args:
        hidden: the carried state of all B streams, (L, B, H) (LSTM: a pair).
        rng_ranks: every rank's RNG states under distributed training (``rng`` is rank 0's).
    """
    rng = rng_ranks[0] if rng_ranks else rng_state()
    return {"format_version": ckpt_io.FORMAT_VERSION, "versions": ckpt_io.versions(),
            "config": cfg.to_dict(), "vocab": vocab.to_payload(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "state": state.to_dict(), "hidden": hidden,
            "rng": rng, "rng_ranks": rng_ranks}


def build_hooks(model: CharLM, optimizer, cfg: RunConfig, vocab, splits: dict[str, np.ndarray],
                paths: RunPaths, writer, dist: Dist = SINGLE) -> Hooks:
    """Hooks that log to TensorBoard, evaluate, sample and save checkpoints.

    Every rank calls every hook (evaluation and checkpoints hold collectives); only rank 0,
    which alone has a ``writer``, writes anything.
    """
    t = cfg.train
    train_ids, val_ids = splits["train"], splits["val"]
    gradflow_done = [0]  # step of the last gradient-flow log

    def save(state: TrainState, name: str, hidden=None, rng_ranks=None) -> None:
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            logger.error("step %d: weights are not finite; %s not saved", state.step, name)
            return
        ckpt_io.save_checkpoint(make_payload(model, optimizer, state, cfg, vocab, hidden,
                                             rng_ranks), paths.checkpoints / name)

    def on_log(state: TrainState, m: dict) -> None:
        if not dist.is_main:
            return
        for key in ("loss", "lr", "grad_norm", "chars_per_s", "nonfinite_steps"):
            writer.add_scalar(f"train/{key}", m[key], state.step)
        writer.add_scalar("train/bpc", nats_to_bits(m["loss"]), state.step)
        every = t.log_gradflow_interval
        if every and state.step // every > gradflow_done[0] // every:
            gradflow_done[0] = state.step
            log_gradients(writer, model, m["grad_norms"], cfg, train_ids, state.step)

    def on_eval(state: TrainState) -> None:
        loss, n = evaluate(model, val_ids, t.eval_batch_size, t.seq_len, t.eval_max_chars,
                           dist=dist)
        state.last_val_loss = loss
        best = loss < state.best_val_loss
        state.best_val_loss = min(loss, state.best_val_loss)
        if dist.is_main:
            report_eval(state, loss, n, best)

    def report_eval(state: TrainState, loss: float, n: int, best: bool) -> None:
        writer.add_scalar("val/loss", loss, state.step)
        writer.add_scalar("val/bpc", nats_to_bits(loss), state.step)
        writer.add_scalar("val/elapsed_s", state.elapsed_s, state.step)
        unit = cfg.data.unit
        logger.info("step %d: val loss %.4f nats/%s, %.4f %s over %d %ss", state.step, loss,
                    unit, nats_to_bits(loss), "bpc" if unit == "char" else "bits/byte", n, unit)
        if best:
            save(state, ckpt_io.BEST)
        if t.log_gates:
            log_gates(writer, gate_statistics(model, val_ids, batch=4, length=128), state.step)
        if t.sample_length:
            s = cfg.sample
            text = sample_text(model, vocab, default_prime(vocab), t.sample_length,
                               s.temperature, s.top_k, s.top_p, seed=state.step)
            writer.add_text("sample/text", "```\n" + text + "\n```", state.step)
        writer.flush()

    def on_checkpoint(state: TrainState, hidden) -> None:
        full = map_hidden(hidden, dist.gather_rows) if hidden is not None else None
        rng_ranks = dist.gather_objects(rng_state()) if dist.enabled else None
        if dist.is_main:
            save(state, ckpt_io.LAST, full, rng_ranks)
            writer.flush()

    return Hooks(on_log=on_log, on_eval=on_eval, on_checkpoint=on_checkpoint)


def finalize_config(cfg: RunConfig, dist: Dist = SINGLE) -> RunConfig:
    """Fill what a run must record to be repeatable: the seed drawn, the run name, and a
    corpus spec that works from any folder. Under distributed training rank 0's draws are
    used everywhere."""
    t = cfg.train
    seed = t.seed if t.seed is not None else secrets.randbelow(2**31)
    name = t.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model.cell}"
    seed, name = dist.gather_objects((seed, name))[0]
    return dataclasses.replace(
        cfg, train=dataclasses.replace(t, seed=seed, run_name=name),
        data=dataclasses.replace(cfg.data, corpus=canonical_spec(cfg.data.corpus)))


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


def train_run(cfg: RunConfig, resume: dict | None = None, resume_dir: Path | None = None,
              init: dict | None = None) -> TrainResult:
    """Train one run as ``cfg`` says and return its summary.

    Under ``torchrun`` this is one rank of a DistributedDataParallel job
    (:mod:`charlm.distributed`); only rank 0 writes files.

    Args:
        resume: a loaded checkpoint to continue exactly (its folder is ``resume_dir``).
        init: a loaded checkpoint whose weights and vocabulary start a new run (fine-tuning).
    Raises:
        CharLMError: for bad data, devices or output folders (before anything is trained).
        Interrupted: after SIGINT or SIGTERM, once ``last.pt`` is saved.
        NumericalError: when updates stay non-finite; the last good checkpoint is kept.
    """
    dist, device = init_from_env(resolve_device(cfg.train.device))
    clean = False  # every rank got to the end (or to a stop they agreed on)
    try:
        cfg = finalize_config(cfg, dist)
        rows = _rows(cfg, dist, resume is not None)
        start = resume or init
        vocab, splits = prepare_data(cfg, vocab_from_payload(start["vocab"]) if start else None,
                                     dist)
        paths = prepare_paths(cfg, resume_dir if resume else None, write=dist.is_main)
        if dist.is_main:
            save_yaml(cfg, paths.checkpoints / "config.yaml")
        logger.info("run %s: seed %d, device %s%s", paths.name, cfg.train.seed, device,
                    f", resuming at step {resume['state']['step']}" if resume else "")
        model, optimizer = _build(cfg, vocab, start, device, dist)
        state, hidden = (_restore(resume, optimizer, device, rows, dist) if resume
                         else (TrainState(), None))
        train = TBPTTBatches(splits["train"], cfg.train.batch_size, cfg.train.seq_len, device,
                             rows)
        _warn_if_spent(cfg, train, state, paths, resume)
        writer = (open_writer(paths.logs, purge_step=state.step + 1 if resume else None)
                  if dist.is_main else None)
        hooks = build_hooks(model, optimizer, cfg, vocab, splits, paths, writer, dist)
        state = _fit_and_save(model, optimizer, train, cfg, state, hooks, hidden, dist, paths,
                              writer)
        clean = True
    except Interrupted:
        clean = True
        raise
    finally:
        shutdown(dist, wait=clean)
    best = paths.checkpoints / ckpt_io.BEST
    return TrainResult(paths.name, state.step, state.elapsed_s, state.last_val_loss,
                       nats_to_bits(state.last_val_loss),
                       best if best.exists() else paths.checkpoints / ckpt_io.LAST,
                       paused=not state.finished, main=dist.is_main,
                       unit=cfg.data.unit)


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


def _warn_if_spent(cfg: RunConfig, train: TBPTTBatches, state: TrainState, paths: RunPaths,
                   resume: dict | None) -> None:
    if resume and Budget.from_config(cfg.train, train.full_chunks).done(state.step,
                                                                       state.elapsed_s):
        logger.warning("run %s is already at step %d (%.0f s): its budget is spent, nothing "
                       "to train; raise --max-steps / --max-time to continue", paths.name,
                       state.step, state.elapsed_s)


def _fit_and_save(model, optimizer, train, cfg: RunConfig, state: TrainState, hooks: Hooks,
                  hidden, dist: Dist, paths: RunPaths, writer) -> TrainState:
    """Run :func:`fit` under the signal handlers, then save ``last.pt`` and the hparams."""
    try:
        with stop_on_signals() as received:
            hooks.should_stop = lambda: received() is not None
            state, hidden = fit(model, optimizer, train, cfg, state, hooks, hidden, dist)
            signum = int(dist.agree(received() or 0)[0])  # any rank's signal stops them all
        if not signum or state.step % cfg.train.checkpoint_interval:
            hooks.on_checkpoint(state, hidden)  # not twice for a stop right after a save
        if signum:
            how = "torchrun ... -m charlm" if dist.enabled else "charlm"
            raise Interrupted(f"stopped at step {state.step}; saved "
                              f"{paths.checkpoints / ckpt_io.LAST}; continue with: {how} "
                              f"train --resume {paths.name}", signum)
        if dist.is_main:
            log_hparams(writer, cfg.to_dict(), {"val_loss": state.last_val_loss,
                                                "val_bpc": nats_to_bits(state.last_val_loss),
                                                "best_val_loss": state.best_val_loss},
                        state.step)
    finally:
        if writer is not None:
            writer.close()
    return state


def load_model(ckpt: dict, device: torch.device) -> tuple[CharLM, Vocab, RunConfig]:
    """Rebuild the model, vocabulary and config stored in a loaded checkpoint.

    Raises:
        CheckpointError: if the stored config or weights do not fit together.
    """
    from charlm.config import from_dict

    try:
        cfg = from_dict(ckpt["config"])
        vocab = vocab_from_payload(ckpt["vocab"])
        model = create_model(cfg.model, vocab.size)
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError, RuntimeError, CharLMError) as exc:
        detail = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        raise ckpt_io.CheckpointError(f"checkpoint contents are inconsistent: "
                                      f"{detail[:400]}") from None
    return model.to(device).eval(), vocab, cfg

