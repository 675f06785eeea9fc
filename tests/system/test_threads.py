"""Process state: sharing the CPU with other busy processes, and threads for tiny work."""

import pytest
import torch

from charlm.config import OptimConfig
from charlm.config.cells import CELLS
from charlm.models.lm import CharLM, core_class
from charlm.system import threads as thread_module
from charlm.system.threads import ThreadShare, threads_for
from charlm.training.step import make_optimizer, train_step


def trained_weights(cell: str, threads: int) -> list[torch.Tensor]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = CharLM(40, cell, 16, 48, 2)
        opt = make_optimizer(model, OptimConfig())
        gen, hidden = torch.Generator().manual_seed(1), None
        for _ in range(5):
            x, y = (torch.randint(0, 40, (8, 32), generator=gen) for _ in range(2))
            _, _, hidden, _ = train_step(model, opt, x, y, hidden, 1.0)
        return [p.detach().clone() for p in model.parameters()]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("cell", list(CELLS))
def test_the_thread_count_does_not_change_the_weights(cell):
    """Why ThreadShare may change the thread count mid-run: the fused cores' results stay
    bit for bit; cores with LayerNorm (minGRU, minLSTM) sum over B·T rows in per-thread
    chunks, so their last bits may move (train.share_cpu=false keeps them fixed)."""
    one, two = trained_weights(cell, 1), trained_weights(cell, 2)
    if issubclass(core_class(CELLS[cell]), torch.nn.RNNBase):
        assert all(torch.equal(a, b) for a, b in zip(one, two))
    else:
        for a, b in zip(one, two):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_thread_share_gives_up_threads_while_others_are_busy(monkeypatch):
    readings = iter([(0.0, 0.0, 0.0),      # at the start
                     (1.0, 2.0, 1.0),      # others used 1 core: give threads up
                     (2.0, 3.9, 2.0),      # others used 0.9 cores: stay on 1
                     (3.0, 4.9, 2.9)])     # others used 0.1 cores: take them back
    monkeypatch.setattr(thread_module, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(torch, "get_num_threads", lambda: state["threads"])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: state.update(threads=n))
    state = {"threads": 4}
    share = ThreadShare(period_s=0.5)
    seen = []
    for _ in range(3):
        share.check()
        seen.append(state["threads"])
    assert seen == [1, 1, 4]


def test_tiny_work_runs_on_one_thread_and_restores_the_count():
    before = torch.get_num_threads()
    with threads_for(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with threads_for(64):
        assert torch.get_num_threads() == before
