"""Where a continuation starts: the priming text, normalised as the corpus was, checked
against the vocabulary. Torch-free, so the torch engine and the ONNX engine prime alike."""

from __future__ import annotations

import logging

from charlm.data.sources import normalize_newlines
from charlm.data.vocab import format_chars
from charlm.errors import DataError

logger = logging.getLogger(__name__)


def default_prime(vocab) -> str:
    """A newline when the vocabulary has one (text starts a line), else its first character."""
    return "\n" if "\n" in vocab else vocab.chars[0]


def prime_text(vocab, prime: str | None, drop_unknown: bool = False,
               fix: str = "remove them or pass --drop-unknown") -> tuple[str, str]:
    """The priming text to show and the text to feed.

    Args:
        vocab: the model's vocabulary.
        prime: the user's text (line endings normalised as in training, except for a byte
            model, which sees bytes as given), or None for :func:`default_prime`, which is fed
            but not shown.
        drop_unknown: remove characters the model never saw instead of raising.
        fix: what the user can do about unknown characters, said in the error.
    Returns:
        ``(shown, fed)``: ``shown`` is empty when the prime is not the user's.
    Raises:
        DataError: listing the characters outside the vocabulary and ``fix``.
    """
    text = default_prime(vocab) if prime is None else \
        normalize_newlines(prime) if vocab.unit == "char" else prime
    unknown = vocab.unknown(text)
    if unknown and not drop_unknown:
        raise DataError(f"the prime has {len(unknown)} character(s) the model never saw: "
                        f"{format_chars(unknown)}; {fix}")
    if unknown:
        logger.warning("dropped from the prime: %s", format_chars(unknown))
        text = "".join(c for c in text if c in vocab)
    if not text:
        text, prime = default_prime(vocab), ""
    return ("" if prime is None else text if prime else ""), text
