"""The truncated-BPTT loop: epochs, hooks and the carried state."""

import math

import numpy as np

from charlm.config import build_config
from charlm.data import TBPTTBatches
from charlm.models import CharLM
from charlm.training import Hooks, TrainState, fit, make_optimizer


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
