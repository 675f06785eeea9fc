"""Vocabularies: characters (Unicode code points) or bytes, and the one code-point encoder.

Shape legend: N ids, V vocab size.
"""

from __future__ import annotations

import codecs
import functools
import logging
from typing import Callable

import numpy as np

from charlm.errors import DataError

logger = logging.getLogger(__name__)

CODE_POINTS = 0x110000


def code_points(text: str) -> np.ndarray:
    """(N,) uint32 code points of ``text``."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


class Vocab:
    """``data.unit: char``. The sorted set of characters (Unicode code points) of a corpus; id = index.

    A character outside the Basic Multilingual Plane (an emoji, say) is one entry, because
    Python strings index code points.

    Raises:
        ValueError: if ``chars`` is empty, not sorted and unique, or holds a lone surrogate.
    """

    unit = "char"

    def __init__(self, chars: str) -> None:
        if not chars or list(chars) != sorted(set(chars)):
            raise ValueError("a Vocab needs a non-empty string of sorted, unique characters")
        lone = [c for c in chars if is_surrogate(c)]
        if lone:
            raise ValueError(f"it holds lone surrogates {format_chars(lone, 4)}, which are no "
                             f"characters and cannot be written as text")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """The vocabulary of ``text``: its distinct characters in code-point order."""
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """V, the number of characters."""
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """The most compact unsigned integer type that holds every id."""
        return np.dtype(np.uint8 if self.size <= 256 else np.uint16 if self.size <= 65536
                        else np.int32)

    def unknown(self, text: str) -> list[str]:
        """Sorted characters of ``text`` that are not in the vocabulary."""
        return sorted(set(text) - set(self._index))

    @functools.cached_property
    def _table(self) -> np.ndarray:
        """(0x110000,) int32: the id of each code point, -1 for those not in the vocabulary."""
        table = np.full(CODE_POINTS, -1, dtype=np.int32)
        table[code_points(self.chars)] = np.arange(self.size, dtype=np.int32)
        return table

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """(N,) int32 ids of (N,) code points, -1 where a character is not in the vocabulary.

        The one code-point encoder: :meth:`encode` and the corpus cache both use it.
        """
        return self._table[codes]

    def encode(self, text: str) -> np.ndarray:
        """Ids of ``text`` as a 1-D array of :attr:`dtype`.

        Raises:
            DataError: listing the characters that are not in the vocabulary.
        """
        ids = self.lookup(code_points(text))
        if (ids < 0).any():
            missing = self.unknown(text)
            raise DataError(f"{len(missing)} character(s) not in the model's vocabulary: "
                            f"{format_chars(missing)}")
        return ids.astype(self.dtype)

    def decode(self, ids) -> str:
        """The text of a sequence of ids (ints, an array or a 1-D tensor)."""
        return "".join(self.chars[int(i)] for i in ids)

    def stream_decoder(self) -> Callable[[list[int], bool], str]:
        """A function ``(ids, final) -> text`` for ids that arrive a few at a time."""
        return lambda ids, final=False: self.decode(ids)

    def to_payload(self) -> str:
        """What a checkpoint stores (the characters); :func:`vocab_from_payload` reverses it."""
        return self.chars

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def __len__(self) -> int:
        return self.size


class ByteVocab:
    """The 256 byte values: ``data.unit: byte``. Any file, in any language or encoding, is
    its bytes as stored (no decoding, no line-ending changes), so nothing is ever unknown.

    Text given to :meth:`encode` (a prime) is UTF-8 encoded; :meth:`decode` replaces invalid
    or incomplete UTF-8 sequences with U+FFFD instead of failing.
    """

    unit = "byte"
    size = 256
    dtype = np.dtype(np.uint8)

    def unknown(self, text: str) -> list[str]:
        """Always empty: every text has a UTF-8 encoding."""
        return []

    def encode(self, text: str) -> np.ndarray:
        """(N,) uint8: the UTF-8 bytes of ``text``."""
        return np.frombuffer(text.encode("utf-8", errors="surrogateescape"), dtype=np.uint8)

    def decode(self, ids) -> str:
        """The UTF-8 text of a sequence of byte ids, invalid sequences replaced by U+FFFD."""
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def stream_decoder(self) -> Callable[[list[int], bool], str]:
        """A function ``(ids, final) -> text`` that holds back an incomplete UTF-8 sequence
        until its remaining bytes arrive (or ``final``), and replaces invalid ones."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda ids, final=False: decoder.decode(bytes(int(i) for i in ids), final)

    def to_payload(self) -> dict:
        """What a checkpoint stores; :func:`vocab_from_payload` reverses it."""
        return {"unit": "byte", "size": 256}

    def __contains__(self, char: str) -> bool:
        return True

    def __len__(self) -> int:
        return 256


def grown_vocab(vocab: Vocab, text_vocab: Vocab) -> tuple[Vocab, list[int], list[str]]:
    """``vocab`` with the characters of ``text_vocab`` it lacks, still sorted.

    Returns:
        ``(grown, old_to_new, added)``: the new vocabulary, the new id of each old id, and the
        characters added (none: ``grown`` is ``vocab``).
    """
    added = sorted(set(text_vocab.chars) - set(vocab.chars))
    if not added:
        return vocab, list(range(vocab.size)), []
    grown = Vocab("".join(sorted(set(vocab.chars) | set(added))))
    new_id = {c: i for i, c in enumerate(grown.chars)}
    return grown, [new_id[c] for c in vocab.chars], added


def vocab_from_payload(payload) -> "Vocab | ByteVocab":
    """The vocabulary a checkpoint stored (a string of characters, or the byte marker).

    Raises:
        ValueError: if the payload is neither.
    """
    if isinstance(payload, dict) and payload.get("unit") == "byte":
        return ByteVocab()
    if isinstance(payload, str):
        return Vocab(payload)
    raise ValueError(f"unrecognised vocabulary entry of type {type(payload).__name__}")


def is_surrogate(char: str) -> bool:
    """Whether ``char`` is a lone UTF-16 surrogate (U+D800..U+DFFF): a code point that some
    codecs yield (utf-7, surrogateescape) but that no text file can hold."""
    return 0xD800 <= ord(char) <= 0xDFFF


def format_chars(chars: list[str], limit: int = 20) -> str:
    """Readable list of characters, e.g. ``'é' (U+00E9), '\\t' (U+0009)``."""
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars[:limit])
    return shown + (f", and {len(chars) - limit} more" if len(chars) > limit else "")


def char_label(char: str) -> str:
    """A one-line, tab-free name for a character: itself, or a name for whitespace and
    control characters (``newline``, ``space``, ``U+0007``)."""
    names = {"\n": "newline", " ": "space", "\t": "tab", "\r": "return"}
    if char in names:
        return names[char]
    if not char.isprintable() or char.isspace():
        return f"U+{ord(char):04X}"
    return char


def id_labels(vocab: "Vocab | ByteVocab") -> list[str]:
    """A one-line label for every id, in id order: the character (:func:`char_label`), or
    ``0xNN`` for a byte model (the TensorBoard PROJECTOR's metadata)."""
    if vocab.unit == "char":
        return [char_label(c) for c in vocab.chars]
    return [f"0x{i:02X}" for i in range(vocab.size)]
