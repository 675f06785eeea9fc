"""The one data path: a corpus spec and the data options in, the vocabulary and the
memory-mapped train / val / test ids out.

Every command that reads text goes through :func:`load_corpus`: training, ``eval``,
``inspect --gates``, ``gradflow``, ``visualize`` and ``bench``.

Shape legend: N ids of the whole corpus.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlm.config import DataConfig
from charlm.data.cache import encode_corpus
from charlm.data.layout import split_ids
from charlm.data.vocab import ByteVocab, Vocab

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Corpus:
    """An encoded corpus and its contiguous splits.

    Attributes:
        ids: (N,) ids of the whole corpus, a read-only-on-disk memory map.
        vocab: its vocabulary (the corpus's own, or the one imposed by a checkpoint).
        splits: ``{'train', 'val', 'test'}`` -> views of ``ids`` cut by the split fractions.
        folder: the cache entry the ids live in.
        reused: True when the ids came from the cache without reading the text.
        sha256: digest of the corpus's bytes (sizes and contents of its files, in order).
    """

    ids: np.ndarray
    vocab: Vocab | ByteVocab
    splits: dict[str, np.ndarray]
    folder: Path
    reused: bool
    sha256: str


def load_corpus(data: DataConfig, vocab: Vocab | ByteVocab | None = None,
                progress: bool | None = None, cache_option: str = "--set data.cache_dir=PATH",
                **changes) -> Corpus:
    """Encode the corpus ``data`` names (or reuse its cached encoding) and split it.

    Args:
        data: the ``data`` section of a run's config.
        vocab: a checkpoint's vocabulary to encode with (resume, fine-tuning, evaluation);
            None builds one from the text.
        progress: show a tqdm bar while encoding (None: only on a terminal).
        cache_option: how the running command sets the cache folder, for the error message.
        changes: ``DataConfig`` fields to replace first, e.g. ``corpus=`` for other text.
    Raises:
        DataError: for unreadable or undecodable text, an empty corpus, characters outside
            ``vocab`` (listed), or a cache folder that cannot be written.
    """
    d = dataclasses.replace(data, **{k: v for k, v in changes.items() if v is not None})
    encoded = encode_corpus(d.corpus, d.data_dir, d.cache_dir, d.unit, d.encoding, d.errors,
                            vocab, progress=progress, cache_option=cache_option)
    splits = split_ids(encoded.ids, d.train_frac, d.val_frac)
    return Corpus(encoded.ids, encoded.vocab, splits, encoded.folder, encoded.reused,
                  encoded.sha256)
