"""One training run, end to end: folders, seed, data, model, TensorBoard, checkpoints.

``checkpoints/<run>/`` receives ``config.yaml`` (before the first step), ``best.pt`` (lowest
val loss so far) and ``last.pt``; ``runs/<run>/`` receives the TensorBoard events.
"""

from __future__ import annotations

import dataclasses
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
from charlm.corpora import DataError, canonical_spec, load_text
from charlm.data import TBPTTBatches, Vocab, check_trainable, format_chars, split_ids
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
    paused: bool = False  # stopped by train.stop_at_step; continue with --resume


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


def prepare_paths(cfg: RunConfig, resume_dir: Path | None = None) -> RunPaths:
    """Create the run's folders, refusing to overwrite a run that already has checkpoints.

    Args:
        resume_dir: the folder of the checkpoint a resumed run continues; it is reused.
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
    for folder, option in ((paths.checkpoints, "--checkpoint-dir"), (paths.logs, "--log-dir")):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".charlm-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CharLMError(f"cannot write to {folder}: {exc.strerror or exc}; choose "
                              f"another folder with {option}") from None
    return paths


def prepare_data(cfg: RunConfig, vocab: Vocab | None = None
                 ) -> tuple[Vocab, dict[str, np.ndarray]]:
    """Read and encode the corpus; return its vocabulary and train/val/test id arrays.

    Args:
        vocab: a checkpoint's vocabulary to encode with (resume, fine-tuning); None builds one
            from the text.
    Raises:
        DataError: for unreadable text, characters outside ``vocab`` (listed), or splits too
            short for one training step or one evaluation.
    """
    d = cfg.data
    text = load_text(d.corpus, d.data_dir, d.encoding, d.errors)
    unknown = vocab.unknown(text) if vocab is not None else []
    if unknown:
        raise DataError(f"the corpus has characters the checkpoint's vocabulary lacks: "
                        f"{format_chars(unknown)}; train a new run on this text")
    vocab = vocab or Vocab.from_text(text)
    splits = split_ids(vocab.encode(text), d.train_frac, d.val_frac)
    check_trainable(len(splits["train"]), cfg.train.batch_size, cfg.train.seq_len)
    if len(splits["val"]) < 2:
        raise DataError(f"the val split has {len(splits['val'])} character(s) of {len(text)}; "
                        f"raise data.val_frac or give a longer corpus")
    logger.info("vocab_size %d; split sizes train %d, val %d, test %d characters", vocab.size,
                len(splits["train"]), len(splits["val"]), len(splits["test"]))
    return vocab, splits


def make_payload(model: CharLM, optimizer, state: TrainState, cfg: RunConfig, vocab: Vocab,
                 hidden=None) -> dict:
    """The checkpoint dict (see :mod:`charlm.checkpoint`), with what exact resume needs."""
    return {"format_version": ckpt_io.FORMAT_VERSION, "versions": ckpt_io.versions(),
            "config": cfg.to_dict(), "vocab": vocab.chars, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "state": state.to_dict(), "hidden": hidden,
            "rng": rng_state()}


def build_hooks(model: CharLM, optimizer, cfg: RunConfig, vocab: Vocab,
                splits: dict[str, np.ndarray], paths: RunPaths, writer) -> Hooks:
    """Hooks that log to TensorBoard, evaluate, sample and save checkpoints."""
    t = cfg.train
    train_ids, val_ids = splits["train"], splits["val"]
    gradflow_done = [0]  # step of the last gradient-flow log

    def save(state: TrainState, name: str, hidden=None) -> None:
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            logger.error("step %d: weights are not finite; %s not saved", state.step, name)
            return
        ckpt_io.save_checkpoint(make_payload(model, optimizer, state, cfg, vocab, hidden),
                                paths.checkpoints / name)

    def on_log(state: TrainState, m: dict) -> None:
        for key in ("loss", "lr", "grad_norm", "chars_per_s", "nonfinite_steps"):
            writer.add_scalar(f"train/{key}", m[key], state.step)
        writer.add_scalar("train/bpc", nats_to_bits(m["loss"]), state.step)
        every = t.log_gradflow_interval
        if every and state.step // every > gradflow_done[0] // every:
            gradflow_done[0] = state.step
            log_gradients(writer, model, m["grad_norms"], cfg, train_ids, state.step)

    def on_eval(state: TrainState) -> None:
        loss, n = evaluate(model, val_ids, t.eval_batch_size, t.seq_len, t.eval_max_chars)
        state.last_val_loss = loss
        writer.add_scalar("val/loss", loss, state.step)
        writer.add_scalar("val/bpc", nats_to_bits(loss), state.step)
        writer.add_scalar("val/elapsed_s", state.elapsed_s, state.step)
        logger.info("step %d: val loss %.4f nats/char, %.4f bpc over %d chars",
                    state.step, loss, nats_to_bits(loss), n)
        if loss < state.best_val_loss:
            state.best_val_loss = loss
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
        save(state, ckpt_io.LAST, hidden)
        writer.flush()

    return Hooks(on_log=on_log, on_eval=on_eval, on_checkpoint=on_checkpoint)


def finalize_config(cfg: RunConfig) -> RunConfig:
    """Fill what a run must record to be repeatable: the seed drawn, the run name, and a
    corpus spec that works from any folder."""
    t = cfg.train
    seed = t.seed if t.seed is not None else secrets.randbelow(2**31)
    name = t.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model.cell}"
    return dataclasses.replace(
        cfg, train=dataclasses.replace(t, seed=seed, run_name=name),
        data=dataclasses.replace(cfg.data, corpus=canonical_spec(cfg.data.corpus)))


def _restore(resume: dict, optimizer, device: torch.device):
    """Optimizer state, TrainState, carried hidden state and RNG states of a checkpoint."""
    optimizer.load_state_dict(resume["optimizer"])
    hidden = resume.get("hidden")
    hidden = map_hidden(hidden, lambda h: h.to(device)) if hidden is not None else None
    restore_rng(resume["rng"])
    return TrainState(**resume["state"]), hidden


def train_run(cfg: RunConfig, resume: dict | None = None, resume_dir: Path | None = None,
              init: dict | None = None) -> TrainResult:
    """Train one run as ``cfg`` says and return its summary.

    Args:
        resume: a loaded checkpoint to continue exactly (its folder is ``resume_dir``).
        init: a loaded checkpoint whose weights and vocabulary start a new run (fine-tuning).
    Raises:
        CharLMError: for bad data, devices or output folders (before anything is trained).
        Interrupted: after SIGINT or SIGTERM, once ``last.pt`` is saved.
        NumericalError: when updates stay non-finite; the last good checkpoint is kept.
    """
    cfg = finalize_config(cfg)
    device = resolve_device(cfg.train.device)
    start = resume or init
    vocab, splits = prepare_data(cfg, Vocab(start["vocab"]) if start else None)
    paths = prepare_paths(cfg, resume_dir if resume else None)
    save_yaml(cfg, paths.checkpoints / "config.yaml")
    logger.info("run %s: seed %d, device %s%s", paths.name, cfg.train.seed, device,
                f", resuming at step {resume['state']['step']}" if resume else "")
    seed_everything(cfg.train.seed)
    model = create_model(cfg.model, vocab.size)
    if start:
        model.load_state_dict(start["model"])
    model.to(device)
    logger.info("model: %s %d x %d, %d parameters", cfg.model.cell, cfg.model.num_layers,
                cfg.model.hidden_size, model.num_parameters())
    optimizer = make_optimizer(model, cfg.optim)
    state, hidden = _restore(resume, optimizer, device) if resume else (TrainState(), None)
    train = TBPTTBatches(splits["train"], cfg.train.batch_size, cfg.train.seq_len, device)
    if resume and Budget.from_config(cfg.train, train.full_chunks).done(state.step,
                                                                       state.elapsed_s):
        logger.warning("run %s is already at step %d (%.0f s): its budget is spent, nothing "
                       "to train; raise --max-steps / --max-time to continue", paths.name,
                       state.step, state.elapsed_s)
    writer = open_writer(paths.logs, purge_step=state.step + 1 if resume else None)
    try:
        hooks = build_hooks(model, optimizer, cfg, vocab, splits, paths, writer)
        with stop_on_signals() as received:
            hooks.should_stop = lambda: received() is not None
            state, hidden = fit(model, optimizer, train, cfg, state, hooks, hidden)
        if received() is None or state.step % cfg.train.checkpoint_interval:
            hooks.on_checkpoint(state, hidden)  # not twice for a stop right after a save
        if received() is not None:
            raise Interrupted(f"stopped at step {state.step}; saved "
                              f"{paths.checkpoints / ckpt_io.LAST}; continue with: charlm "
                              f"train --resume {paths.name}", received())
        log_hparams(writer, cfg.to_dict(), {"val_loss": state.last_val_loss,
                                            "val_bpc": nats_to_bits(state.last_val_loss),
                                            "best_val_loss": state.best_val_loss}, state.step)
    finally:
        writer.close()
    best = paths.checkpoints / ckpt_io.BEST
    return TrainResult(paths.name, state.step, state.elapsed_s, state.last_val_loss,
                       nats_to_bits(state.last_val_loss),
                       best if best.exists() else paths.checkpoints / ckpt_io.LAST,
                       paused=state.last_eval_step != state.step)


def load_model(ckpt: dict, device: torch.device) -> tuple[CharLM, Vocab, RunConfig]:
    """Rebuild the model, vocabulary and config stored in a loaded checkpoint.

    Raises:
        CheckpointError: if the stored config or weights do not fit together.
    """
    from charlm.config import from_dict

    try:
        cfg = from_dict(ckpt["config"])
        vocab = Vocab(ckpt["vocab"])
        model = create_model(cfg.model, vocab.size)
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError, RuntimeError, CharLMError) as exc:
        detail = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        raise ckpt_io.CheckpointError(f"checkpoint contents are inconsistent: "
                                      f"{detail[:400]}") from None
    return model.to(device).eval(), vocab, cfg

