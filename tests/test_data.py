import numpy as np
import pytest
import torch

from charlm.errors import DataError
from charlm.data import TBPTTBatches, Vocab, check_trainable, split_ids


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


def test_splits_are_contiguous_and_cover_everything():
    ids = np.arange(1000)
    s = split_ids(ids, 0.9, 0.05)
    assert len(s["train"]) == 900 and len(s["val"]) == 50 and len(s["test"]) == 50
    assert np.array_equal(np.concatenate([s["train"], s["val"], s["test"]]), ids)
    nano = split_ids(np.arange(1115394), 0.9, 0.1)   # nanoGPT's split: nothing left for test
    assert len(nano["val"]) == 1115394 - int(1115394 * 0.9) and len(nano["test"]) == 0


def test_tbptt_layout_rows_continue_across_steps():
    ids = np.arange(1, 42, dtype=np.uint8)  # 41 ids -> 40 pairs
    b = TBPTTBatches(ids, batch_size=3, seq_len=4)
    assert b.stream_len == 13 and b.tail_len == 1 and b.full_chunks == 3 and b.all_chunks == 4
    x0, y0 = b.chunk(0)
    x1, _ = b.chunk(1)
    assert x0.dtype == torch.int64 and x0.shape == (3, 4)
    assert x0[1].tolist() == [14, 15, 16, 17] and y0[1].tolist() == [15, 16, 17, 18]
    assert x1[1, 0].item() == x0[1, -1].item() + 1        # row b of step j+1 continues row b
    xt, yt = b.tail()
    assert xt.tolist() == [[40]] and yt.tolist() == [[41]]  # continues the last stream
    assert b.num_pairs == 40


def test_too_short_corpus_says_sizes():
    with pytest.raises(DataError, match="batch_size 32 x seq_len 128 needs 4097"):
        check_trainable(1000, 32, 128)
    with pytest.raises(DataError, match="too short for 8 streams"):
        TBPTTBatches(np.arange(5, dtype=np.uint8), 8, 4)
