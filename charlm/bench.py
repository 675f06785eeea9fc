"""Throughput benchmark: GEMM ceiling, charlm's training step against a bare PyTorch loop,
evaluation and sampling speed, peak memory. ``charlm bench`` and ``scripts/bench.py`` run it.

Shape legend: B batch (streams), T time steps, E embedding size, H hidden size, L layers,
V vocab size. Speeds are characters per second (chars/s); FLOP counts are multiply-adds x 2.

Model FLOPs per trained character count the matrix products only: each layer's gate GEMMs,
``2 * G * H * (in + H)`` forward with G the cell table's ``blocks`` (LSTM 4, GRU 3, RNN 1),
plus the decoder's ``2 * H * V``; training costs three times the forward pass (one forward,
two for the backward).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from charlm.cell_table import cell_names, get_cell
from charlm.config import build_config
from charlm.data import TBPTTBatches
from charlm.errors import CharLMError
from charlm.evaluation import evaluate
from charlm.models import CharLM, detach_hidden
from charlm.sampling import generate
from charlm.training import Hooks, TrainState, fit, make_optimizer

logger = logging.getLogger(__name__)


def machine() -> dict:
    """Where the figures were measured."""
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": str(torch.__version__),
            "threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.is_available(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def gemm_gflops(shapes=((4096, 1024, 2048), (8192, 256, 1024), (2048, 2048, 2048)),
                seconds: float = 1.0) -> dict[str, float]:
    """fp32 matrix-multiply rate, GFLOP/s, for (M, K, N) shapes (the ceiling)."""
    out = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            reps += 1
        out[f"{m}x{k}x{n}"] = 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9
    return out


def train_flops_per_char(cell: str, E: int, H: int, L: int, V: int) -> float:
    """Matrix FLOPs of one trained character (forward + backward), see the module doc."""
    G = get_cell(cell).blocks
    fwd = sum(2 * G * H * ((E if layer == 0 else H) + H) for layer in range(L)) + 2 * H * V
    return 3.0 * fwd


def _timed(run_steps, warmup: int, steps: int) -> float:
    """Seconds per step of ``run_steps(n)`` after ``warmup`` steps."""
    run_steps(warmup)
    start = time.perf_counter()
    run_steps(steps)
    return (time.perf_counter() - start) / steps


def bare_loop(model: CharLM, batches: TBPTTBatches, lr: float = 5e-3):
    """A plain PyTorch TBPTT loop over the same data: the reference for charlm's overhead."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    state = {"hidden": None, "j": 0}

    def run(n: int) -> None:
        for _ in range(n):
            j = state["j"] % batches.num_chunks
            x, y = batches.chunk(j)
            logits, hidden = model(x, state["hidden"])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            state["hidden"], state["j"] = detach_hidden(hidden), j + 1
    return run


def charlm_loop(model: CharLM, batches: TBPTTBatches, cfg):
    """charlm's own fit loop (logging every 50 steps, no evaluation), n steps at a time."""
    opt = make_optimizer(model, cfg.optim)
    state = TrainState()
    hidden = [None]

    def run(n: int) -> None:
        train = dataclasses.replace(cfg.train, max_steps=state.step + n)
        _, hidden[0] = fit(model, opt, batches, state, Hooks(), train, cfg.optim, hidden[0])
    return run


def bench_training(cell: str, H: int, ids: np.ndarray, V: int, B: int = 64, T: int = 128,
                   L: int = 2, E: int = 64, steps: int = 5) -> dict:
    """chars/s of charlm's fit loop and of the bare loop, their ratio, FLOP/s."""
    cfg = build_config(sets=["train.max_time=null", "train.max_steps=1", "train.progress=false",
                             "train.eval_interval=1000000", "train.checkpoint_interval=1000000",
                             "train.log_interval=50", "train.log_gates=false"])
    batches = TBPTTBatches(ids, B, T)
    result = {"cell": cell, "hidden_size": H, "num_layers": L, "batch_size": B, "seq_len": T}
    for name, make in (("bare", lambda m: bare_loop(m, batches)),
                       ("charlm", lambda m: charlm_loop(m, batches, cfg))):
        torch.manual_seed(0)
        model = CharLM(V, cell, E, H, L)
        result[f"{name}_chars_per_s"] = B * T / _timed(make(model), 2, steps)
    flops = train_flops_per_char(cell, E, H, L, V)
    result["ratio"] = result["charlm_chars_per_s"] / result["bare_chars_per_s"]
    result["gflops"] = flops * result["charlm_chars_per_s"] / 1e9
    return result


def bench_eval_and_sampling(ids: np.ndarray, V: int, H: int = 512, length: int = 400) -> dict:
    """Evaluation chars/s (batch 64, inference mode) and sampling chars/s at batch 1 and 32
    for an L = 2 LSTM."""
    torch.manual_seed(0)
    model = CharLM(V, "lstm", 64, H, 2)
    n = min(len(ids), 200_000)
    start = time.perf_counter()
    evaluate(model, ids[:n], 64, 128)
    out = {"eval_chars_per_s": (n - 1) / (time.perf_counter() - start), "hidden_size": H}
    prime = torch.tensor([0])
    for batch in (1, 32):
        start = time.perf_counter()
        for _ in generate(model, prime, length, batch, 1.0):
            pass
        out[f"sample_b{batch}_chars_per_s"] = batch * length / (time.perf_counter() - start)
    return out


def run(ids: np.ndarray, V: int, sizes=(128, 256, 512, 1024), cells=cell_names(),
        steps: int = 5, out: str | Path | None = None, echo=print) -> dict:
    """The whole benchmark: prints a table as it goes and returns (and writes) the JSON."""
    report = {"machine": machine(), "gemm_gflops": gemm_gflops()}
    ceiling = max(report["gemm_gflops"].values())
    echo(f"machine: {report['machine']}")
    echo("fp32 GEMM GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                          report["gemm_gflops"].items()))
    echo(f"{'cell':>5} {'H':>5} {'bare c/s':>10} {'charlm c/s':>11} {'ratio':>6} "
         f"{'GFLOP/s':>8} {'of GEMM':>8}")
    report["training"] = []
    for cell in cells:
        for H in sizes:
            r = bench_training(cell, H, ids, V, steps=steps)
            r["fraction_of_gemm"] = r["gflops"] / ceiling
            report["training"].append(r)
            echo(f"{cell:>5} {H:>5} {r['bare_chars_per_s']:>10,.0f} "
                 f"{r['charlm_chars_per_s']:>11,.0f} {r['ratio']:>6.3f} {r['gflops']:>8.1f} "
                 f"{r['fraction_of_gemm']:>8.1%}")
    report["inference"] = bench_eval_and_sampling(ids, V)
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    echo("LSTM 2x512: " + ", ".join(f"{k} {v:,.0f}" for k, v in report["inference"].items()))
    echo(f"peak RSS: {report['peak_rss_mib']:.0f} MiB")
    if out:
        try:
            Path(out).write_text(json.dumps(report, indent=2))
        except OSError as exc:
            raise CharLMError(f"cannot write {out}: {exc.strerror or exc}; the figures are "
                              f"printed above; choose another --output") from None
        echo(f"wrote {out}")
    return report
