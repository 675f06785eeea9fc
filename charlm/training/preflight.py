"""What a run checks and fixes before its first step: the seed and corpus spec it records,
its corpus loaded and checked against the batch layout and the options that depend on it, the
corpus of a resumed run compared with the checkpoint's, and each rank's streams.

Everything here raises before anything is trained or written but ``config.yaml`` (which a run
that fails before its first checkpoint removes again); :func:`check_memory` runs before the run
folder is even claimed.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets

from charlm.analysis.gradflow import BURN_IN
from charlm.config import RunConfig
from charlm.data.corpus import Corpus, load_corpus
from charlm.data.layout import check_trainable
from charlm.data.named import DOWNLOADS
from charlm.data.sources import canonical_spec
from charlm.data.vocab import (
    ByteVocab,
    Vocab,
    format_chars,
    grown_vocab,
    vocab_from_payload,
)
from charlm.errors import ConfigError, DataError, DistributedError
from charlm.evaluation.static import scorable
from charlm.generation.sampling import check_top_k
from charlm.models.size import training_bytes
from charlm.system.device import cpu_has_bf16
from charlm.system.distributed import SINGLE, Dist
from charlm.system.memory import check_fits

logger = logging.getLogger(__name__)


def finalize_config(cfg: RunConfig, dist: Dist = SINGLE) -> RunConfig:
    """Fill what a run must record to be repeatable: the seed drawn and a corpus spec that
    works from any folder. Under distributed training rank 0's draw is used everywhere."""
    t = cfg.train
    seed = dist.gather_objects(t.seed if t.seed is not None else secrets.randbelow(2**31))[0]
    return dataclasses.replace(
        cfg, train=dataclasses.replace(t, seed=seed),
        data=dataclasses.replace(cfg.data, corpus=canonical_spec(cfg.data.corpus)))


def prepare_data(cfg: RunConfig, vocab: Vocab | ByteVocab | None = None, dist: Dist = SINGLE
                 ) -> Corpus:
    """The run's corpus (:func:`~charlm.data.corpus.load_corpus`), checked for one training step
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
    scorable(s["val"], "the val split", unit, len(corpus.ids),
             "raise data.val_frac (--set data.val_frac=F) or give a longer corpus (--data)")
    check_late_values(cfg, corpus)
    logger.info("vocab_size %d (%s); split sizes train %d, val %d, test %d", corpus.vocab.size,
                unit, len(s["train"]), len(s["val"]), len(s["test"]))
    return corpus


def prepare_init_data(cfg: RunConfig, vocab: Vocab | ByteVocab, grow: bool, source: str,
                      dist: Dist = SINGLE) -> tuple[Corpus, list[int], list[str]]:
    """The corpus of a fine-tuning run from a checkpoint whose vocabulary is ``vocab``:
    encoded with it, or, with ``grow``, with it and the characters of the text it lacks added
    (:func:`~charlm.data.vocab.grown_vocab`).

    Returns:
        ``(corpus, old_to_new, added)``: the corpus (its ``vocab`` the run's), the new id of
        each old id, and the characters added (none without ``grow``).
    Raises:
        DataError: as :func:`prepare_data`, and, without ``grow``, for characters the
            checkpoint's vocabulary lacks, naming them and ``--grow-vocab``.
    """
    if vocab.unit == "byte":  # every byte is in a byte vocabulary
        return prepare_data(cfg, vocab, dist), list(range(vocab.size)), []
    grown, old_to_new, added = grown_vocab(vocab, prepare_data(cfg, None, dist).vocab)
    if added and not grow:
        raise DataError(f"the corpus has {len(added)} character(s) that the vocabulary of "
                        f"{source} lacks: {format_chars(added)}; pass --grow-vocab to add "
                        f"them to the model, or train a new run on this text")
    return prepare_data(cfg, grown, dist), old_to_new, added


def check_late_values(cfg: RunConfig, corpus: Corpus) -> None:
    """Config values that only the data can check, checked before the first step rather than
    at the evaluation or log point that would use them.

    Raises:
        ConfigError: naming the key and how to set it.
    """
    t = cfg.train
    check_top_k(cfg.sample.top_k, corpus.vocab.size, "--set sample.top_k=N")
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


def rows_of(cfg: RunConfig, dist: Dist, resuming: bool) -> tuple[int, int]:
    """This rank's streams; on resume the batch size is fixed, so the advice is about the
    number of processes."""
    B, W = cfg.train.batch_size, dist.world_size
    if resuming and B % W:
        fits = [n for n in range(1, B + 1) if B % n == 0]
        raise DistributedError(f"run {cfg.train.run_name} has train.batch_size {B}, which a "
                               f"resumed run keeps; resume it with a number of processes that "
                               f"divides {B} ({', '.join(map(str, fits[:8]))}), not {W}")
    return dist.rows(B)


def check_precision(cfg: RunConfig, device) -> None:
    """Refuse a bfloat16 LSTM on a CPU whose oneDNN has no bfloat16 kernels: the fused LSTM
    layer would fail at the first step ("could not create a primitive descriptor").

    Raises:
        ConfigError: naming the key and what to use instead.
    """
    if cfg.train.precision == "bf16" and device.type == "cpu" and cfg.model.cell == "lstm" \
            and not cpu_has_bf16():
        raise ConfigError("train.precision bf16: this CPU has no bfloat16 kernels for the LSTM "
                          "(oneDNN needs AVX-512 BF16 or AMX); use --set train.precision=fp32, "
                          "another --cell, or a GPU")


def check_memory(cfg: RunConfig, device, vocab_size: int, dist: Dist = SINGLE) -> None:
    """Refuse a run whose training step cannot fit in the memory ``device`` has left, before
    the model is built (:func:`~charlm.models.size.training_bytes` against
    :func:`~charlm.system.memory.available_bytes`).

    Args:
        vocab_size: V, or a lower bound of it before the corpus is read
            (:func:`least_vocab_size`).
    Raises:
        ResourceError: one line naming the bytes and --hidden-size, --batch-size, --seq-len.
    """
    m, t = cfg.model, cfg.train
    streams = -(-t.batch_size // dist.world_size)  # this process's share
    check_fits(training_bytes(cfg, vocab_size, streams),
               f"training a {m.cell} of {m.num_layers} x {m.hidden_size} (hidden_size "
               f"{m.hidden_size}, batch_size {t.batch_size}, seq_len {t.seq_len})", device,
               "lower --hidden-size, --batch-size, --seq-len or --num-layers")


def least_vocab_size(cfg: RunConfig, start: dict | None) -> int:
    """V as known before the corpus is read: a checkpoint's, 256 for a byte model, else 1."""
    if start is not None:
        return vocab_from_payload(start["vocab"]).size
    return 256 if cfg.data.unit == "byte" else 1
