import math

import numpy as np
import pytest
import torch

from charlm.config import OptimConfig, build_config
from charlm.data import TBPTTBatches, Vocab
from charlm.cell_table import CELLS
from charlm.models import CharLM
from charlm.evaluation import evaluate, loss_fn
from charlm.training import Budget, Hooks, TrainState, fit, lr_at, make_optimizer, train_step


@pytest.mark.parametrize("cell", list(CELLS))
def test_a_batch_can_be_overfit(cell, stdlib_text):
    torch.manual_seed(0)
    vocab = Vocab.from_text(stdlib_text[:2000])
    ids = torch.from_numpy(vocab.encode(stdlib_text[:2000]).astype(np.int64))
    x, y = ids[:-1].view(1, -1)[:, :256], ids[1:].view(1, -1)[:, :256]
    model = CharLM(vocab.size, cell, 16, 64, 1)
    opt = make_optimizer(model, OptimConfig(lr=0.01))
    first = None
    for _ in range(150):
        loss, norm, _, ok = train_step(model, opt, x, y, None, grad_clip=1.0)
        assert ok
        first = first if first is not None else loss.item()
    assert first > 3.0 and loss.item() < 0.5 * first


def test_evaluate_scores_every_target_once_and_matches_one_pass():
    torch.manual_seed(0)
    model = CharLM(20, "gru", 8, 16, 1)
    ids = np.random.default_rng(0).integers(0, 20, 103).astype(np.uint8)
    loss, n = evaluate(model, ids, batch_size=1, seq_len=7)
    assert n == 102
    t = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        logits, _ = model.eval()(t[:-1].unsqueeze(0))
        ref = loss_fn(logits, t[1:].unsqueeze(0)).item()
    assert loss == pytest.approx(ref, rel=1e-5)
    loss4, n4 = evaluate(model, ids, batch_size=4, seq_len=7)  # 25 per stream + 2 tail pairs
    assert n4 == 102 and abs(loss4 - ref) < 0.2


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


def test_fit_wraps_epochs_and_resets_state():
    cfg = build_config(sets=["train.max_steps=7", "train.max_time=null", "train.batch_size=2",
                             "train.seq_len=5", "train.eval_interval=1000",
                             "train.checkpoint_interval=3", "train.progress=false"])
    ids = np.random.default_rng(0).integers(0, 10, 41).astype(np.uint8)  # 20 per stream
    train = TBPTTBatches(ids, 2, 5)
    model = CharLM(10, "rnn", 4, 8, 1)
    saved, logged = [], []
    hooks = Hooks(on_log=lambda s, m: logged.append(m),
                  on_checkpoint=lambda s, h: saved.append(s.step))
    state, hidden = fit(model, make_optimizer(model, cfg.optim), train, TrainState(), hooks,
                        cfg.train, cfg.optim)
    assert (state.step, state.epoch, state.chunk) == (7, 1, 3)  # 4 chunks per epoch
    assert saved == [3, 6] and logged and math.isfinite(logged[-1]["loss"])
    assert hidden.shape == (1, 2, 8)


@pytest.mark.parametrize("cell", list(CELLS))
def test_bf16_autocast_step_keeps_fp32_loss_and_weights(cell):
    torch.manual_seed(0)
    model = CharLM(20, cell, 8, 16, 2)
    opt = make_optimizer(model, OptimConfig())
    x, y = torch.randint(0, 20, (3, 7)), torch.randint(0, 20, (3, 7))
    loss, norm, hidden, ok = train_step(model, opt, x, y, None, 1.0, torch.bfloat16)
    loss2, *_ = train_step(model, opt, x, y, hidden, 1.0, torch.bfloat16)
    assert ok and loss.dtype == torch.float32 and math.isfinite(loss2.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())
