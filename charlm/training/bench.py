"""Throughput benchmark: GEMM ceiling, charlm's training step against a bare PyTorch loop,
evaluation and sampling speed, peak memory. ``charlm bench`` and ``scripts/bench.py`` run it.

Shape legend: B batch (streams), T time steps, E embedding size, H hidden size, L layers,
V vocab size. Speeds are characters per second (chars/s); FLOP counts are multiply-adds x 2.

Model FLOPs per trained character count the matrix products only: two FLOPs per weight of
every matrix the character passes through (for a fused LSTM layer ``2 * 4H * (in + H)``,
for the decoder ``2 * H * V``; embeddings and elementwise work are not counted); training
costs three times the forward pass (one forward, two for the backward).

On a GPU every clock reading follows a device synchronisation, and ``precision: bf16`` runs
both loops' forward passes under the same bfloat16 autocast.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from charlm.config import build_config
from charlm.config.cells import cell_names
from charlm.data.layout import TBPTTBatches
from charlm.evaluation.static import evaluate
from charlm.generation.sampling import generate
from charlm.models.lm import CharLM
from charlm.models.state import detach_hidden
from charlm.system.device import synchronize
from charlm.system.files import replacing
from charlm.training.loop import Hooks, TrainState, fit
from charlm.training.step import make_optimizer

logger = logging.getLogger(__name__)


def machine(device: torch.device | None = None) -> dict:
    """Where the figures were measured."""
    cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": str(torch.__version__),
            "threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.is_available(),
            "device": str(device or "cpu"),
            "cuda": torch.cuda.get_device_name(device) if cuda else None}


def gemm_gflops(device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32,
                shapes=((4096, 1024, 2048), (8192, 256, 1024), (2048, 2048, 2048)),
                seconds: float = 1.0) -> dict[str, float]:
    """Matrix-multiply rate in GFLOP/s for (M, K, N) shapes on ``device`` in ``dtype``: the
    ceiling the model's FLOP/s is compared with."""
    out = {}
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        torch.mm(a, b)
        synchronize(device)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            reps += 1
            if reps % 8 == 0:
                synchronize(device)
        synchronize(device)
        out[f"{m}x{k}x{n}"] = 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9
    return out


def train_flops_per_char(model: torch.nn.Module) -> float:
    """Matrix FLOPs of one trained character (forward + backward): three times two FLOPs
    per weight of every matrix but the embedding (module doc)."""
    weights = sum(p.numel() for name, p in model.named_parameters()
                  if p.dim() == 2 and not name.startswith("embedding."))
    return 3.0 * 2.0 * weights


def _timed(loops: dict, warmup: int, steps: int, device: torch.device,
           rounds: int = 3) -> dict[str, float]:
    """Seconds per step of each ``loops[name](n)``: ``warmup`` steps each, then ``rounds``
    rounds in which every loop runs its share of ``steps`` in turn; each loop's fastest round
    counts. Alternating the loops within one run spreads the machine's drift over all of them
    instead of charging it to whichever ran during a slow spell. The device is synchronised
    before each clock reading."""
    for run_steps in loops.values():
        run_steps(warmup)
    rounds = max(1, min(rounds, steps))
    best = dict.fromkeys(loops, math.inf)
    for r in range(rounds):
        n = steps // rounds + (1 if r < steps % rounds else 0)
        for name, run_steps in loops.items():
            synchronize(device)
            start = time.perf_counter()
            run_steps(n)
            synchronize(device)
            best[name] = min(best[name], (time.perf_counter() - start) / n)
    return best


def bare_loop(model: CharLM, batches: TBPTTBatches, lr: float = 5e-3,
              autocast: torch.dtype | None = None):
    """A plain PyTorch TBPTT loop over the same data: the reference for charlm's overhead."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    state = {"hidden": None, "j": 0}
    device = batches.inputs.device.type

    def run(n: int) -> None:
        for _ in range(n):
            j = state["j"] % batches.num_chunks
            x, y = batches.chunk(j)
            with torch.autocast(device, dtype=autocast or torch.bfloat16,
                                enabled=autocast is not None):
                logits, hidden = model(x, state["hidden"])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
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
                   L: int = 2, E: int = 64, steps: int = 5,
                   device: torch.device = torch.device("cpu"), precision: str = "fp32") -> dict:
    """chars/s of charlm's fit loop and of the bare loop, their ratio, model FLOP/s."""
    cfg = build_config(sets=["train.max_time=null", "train.max_steps=1", "train.progress=false",
                             "train.eval_interval=1000000", "train.checkpoint_interval=1000000",
                             "train.log_interval=50", "train.log_gates=false",
                             "train.share_cpu=false",  # the same threads as the bare loop
                             f"train.precision={precision}"])
    batches = TBPTTBatches(ids, B, T, device)
    autocast = torch.bfloat16 if precision == "bf16" else None
    result = {"cell": cell, "hidden_size": H, "num_layers": L, "batch_size": B, "seq_len": T,
              "precision": precision}
    loops = {}
    for name, make in (("bare", lambda m: bare_loop(m, batches, autocast=autocast)),
                       ("charlm", lambda m: charlm_loop(m, batches, cfg))):
        torch.manual_seed(0)
        model = CharLM(V, cell, E, H, L).to(device)
        loops[name] = make(model)
    for name, seconds in _timed(loops, 2, steps, device).items():
        result[f"{name}_chars_per_s"] = B * T / seconds
    result["parameters"] = model.num_parameters()
    result["ratio"] = result["charlm_chars_per_s"] / result["bare_chars_per_s"]
    result["gflops"] = train_flops_per_char(model) * result["charlm_chars_per_s"] / 1e9
    return result


def bench_eval_and_sampling(ids: np.ndarray, V: int, H: int = 512, length: int = 400,
                            device: torch.device = torch.device("cpu"), cell: str = "lstm"
                            ) -> dict:
    """Evaluation chars/s (batch 64, inference mode) and sampling chars/s at batch 1 and 32
    for an L = 2 model of ``cell``."""
    torch.manual_seed(0)
    model = CharLM(V, cell, 64, H, 2).to(device)
    n = min(len(ids), 200_000)
    synchronize(device)
    start = time.perf_counter()
    evaluate(model, ids[:n], 64, 128)
    synchronize(device)
    out = {"eval_chars_per_s": (n - 1) / (time.perf_counter() - start), "hidden_size": H}
    prime = torch.tensor([0], device=device)
    for batch in (1, 32):
        synchronize(device)
        start = time.perf_counter()
        for _ in generate(model, prime, length, batch, 1.0):
            pass
        synchronize(device)
        out[f"sample_b{batch}_chars_per_s"] = batch * length / (time.perf_counter() - start)
    return out


def parameter_count(cell: str, V: int, H: int, L: int = 2, E: int = 64) -> int:
    """Trainable parameters of a ``CharLM(V, cell, E, H, L)``, counted without allocating it."""
    with torch.device("meta"):
        return CharLM(V, cell, E, H, L).num_parameters()


def matched_width(cell: str, V: int, target: int, L: int = 2, E: int = 64) -> int:
    """The hidden size H at which ``cell`` has the parameter count nearest ``target``
    (parameters grow with H, so a bisection finds it)."""
    lo, hi = 1, 1
    while parameter_count(cell, V, hi, L, E) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if parameter_count(cell, V, mid, L, E) < target else (lo, mid)
    return min((lo, hi), key=lambda h: abs(parameter_count(cell, V, h, L, E) - target))


def run(ids: np.ndarray, V: int, sizes=(128, 256, 512, 1024), cells=cell_names(),
        steps: int = 5, out: str | Path | None = None, echo=print,
        device: torch.device = torch.device("cpu"), precision: str = "fp32",
        batch_size: int = 64, seq_len: int = 128, equal_params: bool = False) -> dict:
    """The whole benchmark: prints a table as it goes and returns (and writes) the JSON.

    With ``equal_params``, each size in ``sizes`` is an LSTM's hidden size and every cell runs
    at the hidden size that gives it the same parameter count as that LSTM.
    """
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    report = {"machine": machine(device), "gemm_gflops": gemm_gflops(device, dtype)}
    ceiling = max(report["gemm_gflops"].values())
    echo(f"machine: {report['machine']}")
    echo(f"{precision} GEMM GFLOP/s on {device}: " + ", ".join(
        f"{k} {v:,.1f}" for k, v in report["gemm_gflops"].items()))
    echo(f"{'cell':>7} {'H':>5} {'params':>9} {'bare c/s':>11} {'charlm c/s':>11} {'ratio':>6} "
         f"{'GFLOP/s':>9} {'of GEMM':>8}")
    report["training"] = []
    for cell in cells:
        for size in sizes:
            H = (matched_width(cell, V, parameter_count("lstm", V, size)) if equal_params
                 else size)
            r = bench_training(cell, H, ids, V, B=batch_size, T=seq_len, steps=steps,
                               device=device, precision=precision)
            r["fraction_of_gemm"] = r["gflops"] / ceiling
            report["training"].append(r)
            echo(f"{cell:>7} {H:>5} {r['parameters']:>9,} {r['bare_chars_per_s']:>11,.0f} "
                 f"{r['charlm_chars_per_s']:>11,.0f} {r['ratio']:>6.3f} {r['gflops']:>9,.1f} "
                 f"{r['fraction_of_gemm']:>8.1%}")
    report["inference"] = bench_eval_and_sampling(ids, V, device=device)
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    echo("LSTM 2x512: " + ", ".join(f"{k} {v:,.0f}" for k, v in report["inference"].items()))
    echo(f"peak RSS: {report['peak_rss_mib']:.0f} MiB")
    if out:
        with replacing(out, advice="the figures are printed above; choose another --output"
                       ) as fh:
            fh.write(json.dumps(report, indent=2))
        echo(f"wrote {out}")
    return report
