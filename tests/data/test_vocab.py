"""Vocabularies: characters (any code point, one id each) and bytes (256 ids, UTF-8 decoded
incrementally)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.data.vocab import ByteVocab, Vocab, vocab_from_payload
from charlm.errors import DataError

# Any code point but a lone surrogate, with characters beyond the BMP drawn often.
CHARS = st.characters(exclude_categories=("Cs",)) | st.characters(
    min_codepoint=0x10000, max_codepoint=0x10FFFF, exclude_categories=("Cs",))
TEXT = st.text(alphabet=CHARS, max_size=200)


def test_vocab_round_trip_and_compact_dtype(stdlib_text):
    vocab = Vocab.from_text(stdlib_text)
    ids = vocab.encode(stdlib_text)
    assert ids.dtype == np.uint8 and vocab.size <= 256
    assert vocab.decode(ids) == stdlib_text
    assert list(vocab.chars) == sorted(set(stdlib_text))


def test_vocab_wide_characters_are_one_entry_each():
    text = "héllo 한국어 中文 Ελληνικά кириллица 🙂🙂"
    vocab = Vocab.from_text(text)
    assert "🙂" in vocab and vocab.size == len(set(text))
    assert vocab.decode(vocab.encode(text)) == text
    big = Vocab("".join(chr(c) for c in range(0x4E00, 0x4E00 + 300)))
    assert big.dtype == np.uint16


def test_encode_lists_unknown_characters():
    vocab = Vocab.from_text("abc")
    with pytest.raises(DataError, match=r"'x' \(U\+0078\)"):
        vocab.encode("abx")


@settings(max_examples=100, deadline=None)
@given(text=TEXT.filter(bool))
def test_vocab_round_trips_any_text(text):
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert len(ids) == len(text) and vocab.size == len(set(text))
    assert int(ids.max()) < vocab.size and ids.dtype == vocab.dtype
    assert vocab.decode(ids) == text
    assert vocab_from_payload(vocab.to_payload()).chars == vocab.chars


def test_byte_vocab_round_trip_and_incremental_decode():
    vocab = ByteVocab()
    ids = vocab.encode("한글 ok")
    assert ids.dtype == np.uint8 and len(ids) == 3 * 2 + 3
    assert vocab.decode(ids) == "한글 ok"
    decode = vocab.stream_decoder()
    pieces = [decode([int(i)]) for i in ids]
    assert pieces[:3] == ["", "", "한"]  # a character appears once its 3 bytes arrived
    assert "".join(pieces) == "한글 ok"
    assert vocab.decode([0xED, 0x95, 0x41]) == "\ufffdA"  # invalid sequence replaced
    assert decode([0xED, 0x95]) == "" and decode([], True) == "\ufffd"  # truncated at the end
    assert isinstance(vocab_from_payload(vocab.to_payload()), ByteVocab)


@settings(max_examples=100, deadline=None)
@given(text=TEXT, cuts=st.lists(st.integers(0, 800), max_size=8))
def test_byte_vocab_round_trips_any_text_in_any_pieces(text, cuts):
    vocab = ByteVocab()
    ids = vocab.encode(text)
    assert bytes(ids) == text.encode("utf-8")
    assert vocab.decode(ids) == text
    decode = vocab.stream_decoder()
    bounds = [0, *sorted(c for c in cuts if c < len(ids)), len(ids)]
    streamed = "".join(decode(ids[a:b].tolist()) for a, b in zip(bounds, bounds[1:]))
    assert streamed + decode([], True) == text


def test_vocabulary_holding_a_lone_surrogate_is_refused():
    from charlm.data.vocab import Vocab
    with pytest.raises(ValueError, match="lone surrogates"):
        Vocab("ab\ud800")
