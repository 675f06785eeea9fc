"""Contiguous splits and the truncated-BPTT layout: every (input, target) pair once."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.data.layout import IGNORE, TBPTTBatches, check_trainable, split_ids
from charlm.errors import DataError


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
    assert b.stream_len == 13 and b.tail_len == 1 and b.num_chunks == 4
    x0, y0 = b.chunk(0)
    x1, _ = b.chunk(1)
    assert x0.dtype == torch.int64 and x0.shape == (3, 4)
    assert x0[1].tolist() == [14, 15, 16, 17] and y0[1].tolist() == [15, 16, 17, 18]
    assert x1[1, 0].item() == x0[1, -1].item() + 1        # row b of step j+1 continues row b
    xl, yl = b.chunk(3)       # the last step: 1 column left, and the tail on the last row
    assert xl.tolist() == [[13, 0], [26, 0], [39, 40]]
    assert yl.tolist() == [[14, IGNORE], [27, IGNORE], [40, 41]]
    assert b.num_pairs == 40


def test_too_short_corpus_says_sizes():
    with pytest.raises(DataError, match="batch_size 32 x seq_len 128 needs 4097"):
        check_trainable(1000, 32, 128)
    with pytest.raises(DataError, match="too short for 8 streams"):
        TBPTTBatches(np.arange(5, dtype=np.uint8), 8, 4)


def pairs_of(batches: TBPTTBatches) -> list[tuple[int, int]]:
    """Every scored (input, target) pair one pass of chunks holds, in reading order."""
    pieces = [batches.chunk(j) for j in range(batches.num_chunks)] if batches.num_rows else []
    return [(x, y) for xs, ys in pieces
            for x, y in zip(xs.flatten().tolist(), ys.flatten().tolist()) if y != IGNORE]


@st.composite
def layouts(draw):
    """(N, batch_size, seq_len, row cuts of several ranks)."""
    batch_size = draw(st.integers(1, 12))
    n = draw(st.integers(batch_size + 1, 400))
    seq_len = draw(st.integers(1, 40))
    cuts = draw(st.lists(st.integers(1, max(batch_size - 1, 1)), max_size=4, unique=True))
    return n, batch_size, seq_len, sorted(c for c in cuts if c < batch_size)


@settings(max_examples=100, deadline=None)
@given(layouts())
def test_one_pass_of_chunks_covers_every_pair_once(layout):
    n, batch_size, seq_len, cuts = layout
    ids = np.arange(n, dtype=np.int64)          # id = position: a pair is (i, i + 1)
    every = [(i, i + 1) for i in range(n - 1)]
    whole = TBPTTBatches(ids, batch_size, seq_len)
    assert sorted(pairs_of(whole)) == every and whole.num_pairs == n - 1
    bounds = [0, *cuts, batch_size]
    ranks = [TBPTTBatches(ids, batch_size, seq_len, rows=(a, b))
             for a, b in zip(bounds, bounds[1:])]
    union = [p for rank in ranks for p in pairs_of(rank)]
    assert sorted(union) == every                 # several ranks: the same pairs, once each
    assert sum(rank.num_pairs for rank in ranks) == n - 1


@settings(max_examples=100, deadline=None)
@given(layouts())
def test_each_step_counts_the_targets_it_trains_on(layout):
    """chars/s counts what a step trains on: the last, shorter step counts fewer."""
    n, batch_size, seq_len, _ = layout
    batches = TBPTTBatches(np.arange(n, dtype=np.int64), batch_size, seq_len)
    for j in range(batches.num_chunks):
        assert batches.pairs_in(j) == int((batches.chunk(j)[1] != IGNORE).sum())
    last = batches.num_chunks
    assert batches.pairs_read(0, last) == n - 1
    assert batches.pairs_read(2, 1) == 2 * (n - 1) + batches.pairs_in(0)
