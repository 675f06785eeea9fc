"""Size estimates made before a model is built (issue 22, kind 1)."""

import dataclasses

import pytest

from charlm.config import RunConfig
from charlm.config.cells import CELLS
from charlm.models.lm import create_model
from charlm.models.size import generation_bytes, parameter_count, training_bytes


@pytest.mark.parametrize("cell", list(CELLS))
def test_parameter_count_is_that_of_the_built_model(cell):
    cfg = dataclasses.replace(RunConfig().model, cell=cell, hidden_size=24, num_layers=2,
                              embedding_size=8)
    assert parameter_count(cfg, 50) == create_model(cfg, 50).num_parameters()


def test_training_estimate_counts_adamw_state_and_grows_with_each_size():
    cfg = RunConfig()
    base = training_bytes(cfg, 100)
    assert base > 4 * 4 * parameter_count(cfg.model, 100)  # weights, grads, two moments
    for section, key in (("model", "hidden_size"), ("train", "batch_size"),
                         ("train", "seq_len"), ("model", "num_layers")):
        part = getattr(cfg, section)
        bigger = dataclasses.replace(cfg, **{section: dataclasses.replace(
            part, **{key: getattr(part, key) * 2})})
        assert training_bytes(bigger, 100) > base, key


def test_a_hidden_size_of_sixty_thousand_is_estimated_in_hundreds_of_gigabytes():
    cfg = RunConfig()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hidden_size=60_000))
    assert training_bytes(cfg, 100) > 200e9  # built on the meta device: nothing allocated


def test_generation_estimate_grows_with_rows_and_length():
    m = RunConfig().model
    assert generation_bytes(m, 100, 10, 1000) > generation_bytes(m, 100, 1, 1000)
    assert generation_bytes(m, 100, 10, 10**6) - generation_bytes(m, 100, 10, 0) >= 8 * 10**7


def test_training_estimate_counts_the_evaluation_and_halves_bf16_activations():
    """A run evaluates with train.eval_batch_size streams between steps; bf16 stores its
    activations in 2 bytes, so a float32 count would not be the lower bound it claims."""
    cfg = RunConfig()
    wide = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train,
                                                              eval_batch_size=100_000))
    assert training_bytes(wide, 100) > 2 * training_bytes(cfg, 100)
    bf16 = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="bf16"))
    weights = 4 * 4 * parameter_count(cfg.model, 100)
    assert training_bytes(bf16, 100) - weights == (training_bytes(cfg, 100) - weights) // 2
