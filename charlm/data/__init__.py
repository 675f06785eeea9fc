"""Text to ids: corpus sources (:mod:`.sources`), vocabularies (:mod:`.vocab`), the encoding
cache (:mod:`.cache`), splits and the truncated-BPTT layout (:mod:`.layout`), and the one
path through them all, :func:`load_corpus` (:mod:`.corpus`)."""

from charlm.data.corpus import SPLITS, Corpus, load_corpus
from charlm.data.layout import TBPTTBatches, check_trainable, split_ids
from charlm.data.sources import load_text, normalize_newlines, resolve_sources
from charlm.data.vocab import ByteVocab, Vocab, format_chars, vocab_from_payload
from charlm.errors import DataError

__all__ = ["SPLITS", "ByteVocab", "Corpus", "DataError", "TBPTTBatches", "Vocab",
           "check_trainable", "format_chars", "load_corpus", "load_text", "normalize_newlines",
           "resolve_sources", "split_ids", "vocab_from_payload"]
