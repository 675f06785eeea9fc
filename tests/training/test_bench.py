"""The benchmark's arithmetic and a miniature run (speed itself is never asserted here)."""

import numpy as np
import pytest

from charlm.config.cells import CELLS
from charlm.models.lm import CharLM
from charlm.training.bench import (
    bench_eval_and_sampling,
    bench_training,
    matched_width,
    parameter_count,
    train_flops_per_char,
)


def test_flops_per_char_counts_gate_gemms_and_decoder():
    # LSTM, E=64, H=256, L=2, V=65: forward 2*4*256*(64+256) + 2*4*256*512 + 2*256*65
    fwd = 2 * 4 * 256 * 320 + 2 * 4 * 256 * 512 + 2 * 256 * 65
    assert train_flops_per_char(CharLM(65, "lstm", 64, 256, 2)) == 3 * fwd
    assert train_flops_per_char(CharLM(65, "rnn", 64, 256, 2)) < \
        train_flops_per_char(CharLM(65, "gru", 64, 256, 2))


@pytest.mark.parametrize("cell", list(CELLS))
def test_miniature_training_bench_reports_both_loops(cell):
    ids = np.random.default_rng(0).integers(0, 30, 20_000).astype(np.uint8)
    r = bench_training(cell, 16, ids, 30, B=4, T=16, steps=2)
    assert r["bare_chars_per_s"] > 0 and r["charlm_chars_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["charlm_chars_per_s"] / r["bare_chars_per_s"])


def test_miniature_inference_bench():
    ids = np.random.default_rng(0).integers(0, 30, 5_000).astype(np.uint8)
    r = bench_eval_and_sampling(ids, 30, H=16, length=20)
    assert {"eval_chars_per_s", "sample_b1_chars_per_s", "sample_b32_chars_per_s"} <= set(r)


@pytest.mark.parametrize("cell", list(CELLS))
def test_matched_width_gives_the_nearest_parameter_count(cell):
    target = parameter_count("lstm", 65, 256)
    H = matched_width(cell, 65, target)
    gap = abs(parameter_count(cell, 65, H) - target)
    assert gap <= abs(parameter_count(cell, 65, H + 1) - target)
    assert gap <= abs(parameter_count(cell, 65, H - 1) - target)
    assert parameter_count(cell, 65, H) == CharLM(65, cell, 64, H, 2).num_parameters()
