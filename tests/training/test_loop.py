"""The truncated-BPTT loop: epochs, hooks and the carried state."""

import math
from unittest import mock

import numpy as np

from charlm.config import build_config
from charlm.data.layout import IGNORE, TBPTTBatches
from charlm.evaluation.loss import loss_fn
from charlm.models.lm import CharLM
from charlm.training.loop import Hooks, TrainState, curve_due, fit
from charlm.training.step import make_optimizer


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


def test_val_curve_points_start_the_run_and_leave_the_evaluations_alone():
    cfg = build_config(sets=["train.max_steps=12", "train.max_time=null", "train.batch_size=2",
                             "train.seq_len=5", "train.eval_interval=5",
                             "train.checkpoint_interval=100", "train.progress=false"])
    ids = np.random.default_rng(0).integers(0, 10, 41).astype(np.uint8)
    model = CharLM(10, "rnn", 4, 8, 1)
    curve, evals = [], []
    hooks = Hooks(on_curve=lambda s: curve.append(s.step),
                  on_eval=lambda s: evals.append(s.step))
    state, _ = fit(model, make_optimizer(model, cfg.optim), TBPTTBatches(ids, 2, 5),
                   TrainState(), hooks, cfg.train, cfg.optim)
    assert curve == [0, 1, 2, 4, 7] and evals == [5, 10, 12]  # 7: past half of the budget
    assert state.last_eval_step == 12
    assert [s for s in range(300) if curve_due(s, 150)] == [0, 1, 2, 4, 8, 16, 32, 64, 128]


def test_every_training_target_is_used_each_epoch():
    """One epoch trains on every target once: the last step is shorter, and the pairs left
    over after B equal streams continue the last stream in it."""
    cfg = build_config(sets=["train.max_epochs=1", "train.max_time=null", "train.batch_size=4",
                             "train.seq_len=50", "train.progress=false"])
    ids = np.arange(400, dtype=np.int64)            # id = position: target t is the pair t
    batches = TBPTTBatches(ids, 4, 50)              # 399 pairs: 4 streams of 99, 3 left over
    model = CharLM(400, "gru", 4, 8, 1)
    with mock.patch("charlm.training.step.loss_fn", wraps=loss_fn) as spy:
        state, _ = fit(model, make_optimizer(model, cfg.optim), batches, TrainState(), Hooks(),
                       cfg.train, cfg.optim)
    targets = [int(t) for call in spy.call_args_list for t in call.args[1].flatten()
               if t != IGNORE]
    assert state.step == 2 and state.epoch == 0     # ceil(99 / 50) steps make an epoch
    assert sorted(targets) == list(range(1, 400))
