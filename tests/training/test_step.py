"""One training update: it learns (a batch can be overfit) and keeps fp32 weights under bf16
autocast."""

import math

import numpy as np
import pytest
import torch

from charlm.config import OptimConfig
from charlm.config.cells import CELLS
from charlm.data.vocab import Vocab
from charlm.models.lm import CharLM
from charlm.system.device import cpu_has_bf16
from charlm.training.step import make_optimizer, train_step


@pytest.mark.parametrize("cell", list(CELLS))
def test_a_batch_can_be_overfit(cell, stdlib_text):
    torch.manual_seed(0)
    vocab = Vocab.from_text(stdlib_text[:2000])
    ids = torch.from_numpy(vocab.encode(stdlib_text[:2000]).astype(np.int64))
    # 256 characters as 8 rows of 32: the same text to memorise as one row of 256, in an
    # eighth of the sequential steps (GRU and RNN run step by step on a CPU)
    x, y = ids[:256].view(8, 32), ids[1:257].view(8, 32)
    model = CharLM(vocab.size, cell, 16, 64, 1)
    opt = make_optimizer(model, OptimConfig(lr=0.02))
    first = None
    for _ in range(80):
        loss, norm, _, ok = train_step(model, opt, x, y, None, grad_clip=1.0)
        assert ok
        first = first if first is not None else loss.item()
    assert first > 3.0 and loss.item() < 0.25 * first


@pytest.mark.parametrize("cell", list(CELLS))
def test_bf16_autocast_step_keeps_fp32_loss_and_weights(cell):
    if cell == "lstm" and not cpu_has_bf16():
        pytest.skip("this CPU has no oneDNN bfloat16 kernels (AVX-512 BF16 or AMX), which the "
                    "fused LSTM needs under bf16 autocast; training refuses it "
                    "(tests/training/test_preflight.py)")
    torch.manual_seed(0)
    model = CharLM(20, cell, 8, 16, 2)
    opt = make_optimizer(model, OptimConfig())
    x, y = torch.randint(0, 20, (3, 7)), torch.randint(0, 20, (3, 7))
    loss, norm, hidden, ok = train_step(model, opt, x, y, None, 1.0, torch.bfloat16)
    loss2, *_ = train_step(model, opt, x, y, hidden, 1.0, torch.bfloat16)
    assert ok and loss.dtype == torch.float32 and math.isfinite(loss2.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())
