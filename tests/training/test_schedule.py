"""The learning-rate schedule and the training budget."""

import pytest

from charlm.config import OptimConfig, build_config
from charlm.training.schedule import Budget, lr_at


def test_lr_warms_up_then_decays_to_min():
    cfg = OptimConfig(lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(cfg, 0, 0.0) == pytest.approx(0.1)
    assert lr_at(cfg, 9, 0.0) == pytest.approx(1.0)
    assert lr_at(cfg, 500, 0.5) == pytest.approx(0.55)
    assert lr_at(cfg, 1000, 1.0) == pytest.approx(0.1)
    const = OptimConfig(lr=1.0, warmup_steps=0, schedule="constant")
    assert lr_at(const, 10, 0.9) == 1.0


def test_budget_takes_the_first_limit():
    cfg = build_config(sets=["train.max_steps=100", "train.max_epochs=0.5",
                             "train.max_time=null"])
    budget = Budget.from_config(cfg.train, steps_per_epoch=60)
    assert budget.max_steps == 30 and budget.done(30, 0) and not budget.done(29, 1e9)
    timed = Budget(max_steps=None, max_time=10.0)
    assert timed.progress(5, 5.0) == 0.5 and timed.done(0, 10.0)
