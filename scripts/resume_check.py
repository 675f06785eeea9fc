"""Exact resume on a device, for every cell: N steps straight against N/2, a clean stop, and
``--resume``.

    python scripts/resume_check.py --device cuda --data input.txt --output resume.json
    python scripts/resume_check.py --cells lstm,mingru --steps 40 --precision bf16

Each cell trains in fresh ``python -m charlm train`` processes with the same seed and config
(two layers with dropout, so the restored RNG states matter): once straight for ``--steps``
steps, once stopped by ``--stop-at-step`` at half of them and continued with ``--resume``. Up
to ``--jobs`` processes run at a time (one GPU serves them all). Every weight of the two final
``last.pt`` files is compared with ``torch.equal``, and so are the per-step training losses in
TensorBoard. Prints one line per cell and writes the figures as JSON; exit status 0 when every
cell matches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # charlm from this checkout, installed or not

from charlm.config.cells import cell_names  # noqa: E402
from charlm.store.checkpoint import load_checkpoint  # noqa: E402


def train_args(args, cell: str) -> list[str]:
    """One cell's training command, the same for the straight and the paused run."""
    return [sys.executable, "-m", "charlm", "train", "--data", str(Path(args.data).resolve()),
            "--device", args.device, "--cell", cell, "--hidden-size", str(args.hidden_size),
            "--num-layers", "2", "--dropout", "0.1", "--batch-size", str(args.batch_size),
            "--seq-len", "64", "--seed", "1", "--max-steps", str(args.steps), "--no-progress",
            "--set", "train.max_time=null", "--set", f"train.precision={args.precision}",
            "--set", f"train.eval_interval={max(args.steps // 4, 1)}",
            "--set", f"train.checkpoint_interval={max(args.steps // 4, 1)}",
            "--set", "train.log_interval=1", "--set", "train.eval_max_chars=20000",
            "--set", "train.share_cpu=false"]  # the same threads throughout (README)


def run(cmd: list[str], work: Path, log: Path) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    with log.open("a", encoding="utf-8") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        return subprocess.run(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT
                              ).returncode


def losses(run_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("train/loss")]


def compare(work: Path, cell: str) -> dict:
    """Weights and per-step losses of the straight and the resumed run of ``cell``."""
    a = load_checkpoint(work / "checkpoints" / f"{cell}-straight" / "last.pt")
    b = load_checkpoint(work / "checkpoints" / f"{cell}-cut" / "last.pt")
    same = all(torch.equal(t, b["model"][k]) for k, t in a["model"].items())
    diff = max((t.float() - b["model"][k].float()).abs().max().item()
               for k, t in a["model"].items())
    la, lb = losses(work / "runs" / f"{cell}-straight"), losses(work / "runs" / f"{cell}-cut")
    return {"cell": cell, "steps": [a["state"]["step"], b["state"]["step"]],
            "weights_equal": same, "max_abs_difference": diff, "losses_equal": la == lb,
            "logged_steps": [len(la), len(lb)], "exact": same and la == lb}


def check_cell(args, work: Path, cell: str, pool: ThreadPoolExecutor) -> dict:
    """Train ``cell`` straight and paused (together), resume the paused run, compare."""
    log = work / f"{cell}.log"
    base = train_args(args, cell)
    straight = pool.submit(run, base + ["--run-name", f"{cell}-straight"], work, log)
    cut = run(base + ["--run-name", f"{cell}-cut", "--stop-at-step", str(args.steps // 2)],
              work, log)
    resumed = run([sys.executable, "-m", "charlm", "train", "--resume", f"{cell}-cut",
                   "--device", args.device, "--no-progress"], work, log) if cut == 0 else None
    codes = {"straight": straight.result(), "cut": cut, "resume": resumed}
    if any(c != 0 for c in codes.values()):
        return {"cell": cell, "exact": False, "exit_codes": codes,
                "log_tail": log.read_text(encoding="utf-8").splitlines()[-5:]}
    return compare(work, cell) | {"exit_codes": codes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a text file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cells", default=",".join(cell_names()))
    parser.add_argument("--steps", type=int, default=60, help="even; the cut is at half")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--jobs", type=int, default=6, help="cells checked at a time")
    parser.add_argument("--work", help="folder for the runs (default: a new temporary one)")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="charlm-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    print(f"machine: {platform.node()}, python {platform.python_version()}, torch "
          f"{torch.__version__}, device {args.device}; {args.steps} steps straight against "
          f"{args.steps // 2} + resume, {args.precision}; work folder {work}", flush=True)
    began = time.perf_counter()
    with ThreadPoolExecutor(2 * args.jobs) as helpers, ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: check_cell(args, work, c, helpers), cells))
    for r in results:
        print(f"{r['cell']:>8}: {'exact' if r['exact'] else 'DIFFERS'}; " + (
            f"weights equal {r['weights_equal']} (max abs difference "
            f"{r['max_abs_difference']:.3g}), per-step losses equal {r['losses_equal']}"
            if "weights_equal" in r else f"exit codes {r['exit_codes']}: {r['log_tail']}"))
    report = {"device": args.device, "precision": args.precision, "steps": args.steps,
              "hidden_size": args.hidden_size, "seconds": time.perf_counter() - began,
              "cells": results}
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0 if all(r["exact"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
