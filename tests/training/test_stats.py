"""Non-finite losses and gradients: a step is skipped, counted and logged; a streak stops the
run with advice; the fused (device-side) optimizer path skips exactly like the eager one."""

import math

import numpy as np
import pytest
import torch

from charlm.config import build_config
from charlm.data.layout import TBPTTBatches
from charlm.errors import NumericalError
from charlm.models.lm import CharLM
from charlm.training.loop import Hooks, TrainState, fit
from charlm.training.step import make_optimizer


def poison(model, steps):
    """Make the model's logits NaN on the given 1-based forward calls."""
    calls = {"n": 0}

    def hook(module, inputs, output):
        calls["n"] += 1
        return output * float("nan") if calls["n"] in steps else output

    model.decoder.register_forward_hook(hook)


def small_fit(model, max_steps, **sets):
    cfg = build_config(sets=[f"train.max_steps={max_steps}", "train.max_time=null",
                             "train.progress=false", "train.log_interval=1"] +
                       [f"{k}={v}" for k, v in sets.items()])
    ids = np.random.default_rng(0).integers(0, 12, 400).astype(np.uint8)
    logged = []
    state, _ = fit(model, make_optimizer(model, cfg.optim), TBPTTBatches(ids, 4, 8),
                   TrainState(), Hooks(on_log=lambda s, m: logged.append(m)), cfg.train,
                   cfg.optim)
    return state, logged


def test_nonfinite_step_is_skipped_counted_and_logged():
    torch.manual_seed(0)
    model = CharLM(12, "gru", 8, 16, 1)
    poison(model, {3})
    state, logged = small_fit(model, 6)
    assert state.nonfinite_steps == 1 and state.step == 6
    assert logged[2]["nonfinite_steps"] == 1 and all(math.isfinite(m["loss"]) for m in logged)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nonfinite_streak_stops_with_advice():
    model = CharLM(12, "rnn", 8, 16, 1)
    poison(model, set(range(2, 100)))
    with pytest.raises(NumericalError) as info:
        small_fit(model, 50, **{"train.max_nonfinite": 4, "optim.grad_clip": 0.5})
    text = str(info.value)
    assert "stopped at step 5" in text and "4 non-finite" in text
    assert "grad_clip 0.5" in text and "lower --lr" in text


def _fit_with(model, optimizer, max_steps, **sets):
    cfg = build_config(sets=[f"train.max_steps={max_steps}", "train.max_time=null",
                             "train.progress=false"] + [f"{k}={v}" for k, v in sets.items()])
    ids = np.random.default_rng(0).integers(0, 12, 400).astype(np.uint8)
    state, _ = fit(model, optimizer, TBPTTBatches(ids, 4, 8), TrainState(), Hooks(), cfg.train,
                   cfg.optim)
    return state


def _cpu_fused_adamw() -> bool:
    """Whether this torch runs fused AdamW on a CPU (torch 2.4 and later), which these tests
    use to exercise the CUDA path without a GPU."""
    try:
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)], fused=True)
    except RuntimeError:
        return False
    return True


needs_cpu_fused = pytest.mark.skipif(not _cpu_fused_adamw(), reason="this torch has no fused "
                                     "AdamW on a CPU (torch < 2.4); charlm uses it on CUDA only")


@needs_cpu_fused
def test_fused_optimizer_skips_on_the_device_like_the_eager_path():
    """The CUDA path (fused AdamW, skip via found_inf, counts read at log points) run on the
    CPU gives the same skipped count and weights as the per-step path."""
    results = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = CharLM(12, "gru", 8, 16, 1)
        poison(model, {3, 7})
        opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=fused or None)
        state = _fit_with(model, opt, 12, **{"train.log_interval": 5})
        assert state.nonfinite_steps == 2 and state.step == 12
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@needs_cpu_fused
def test_fused_optimizer_streak_stops_at_the_next_log_point():
    model = CharLM(12, "rnn", 8, 16, 1)
    poison(model, set(range(2, 100)))
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=True)
    with pytest.raises(NumericalError, match="stopped at step 10: 9 non-finite"):
        _fit_with(model, opt, 50, **{"train.max_nonfinite": 4, "train.log_interval": 10})
    after = list(model.parameters())
    assert not torch.equal(before[0], after[0])  # step 1 was applied ...
    assert all(torch.isfinite(p).all() for p in after)  # ... and nothing non-finite since
