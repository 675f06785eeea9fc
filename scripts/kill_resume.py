"""Kill a training run with SIGKILL at random moments, resume it each time, and compare.

Trains one run straight through, then the same run (same seed and config) killed with
``kill -9`` ``--kills`` times at random moments and resumed with ``--resume`` after each kill.
Prints where each kill landed and whether the final weights and the per-step training losses
equal the uninterrupted run's.

    python scripts/kill_resume.py --data ../shared/data/tinyshakespeare.txt

Exit status 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from charlm.store.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def train_args(data: str, max_steps: int) -> list[str]:
    return [sys.executable, "-m", "charlm", "train", "--config",
            str(ROOT / "configs" / "shakespeare.yaml"), "--data", data, "--seed", "1",
            "--max-steps", str(max_steps), "--no-progress", "--set", "train.max_time=null",
            "--set", "train.checkpoint_interval=25", "--set", "train.eval_interval=100",
            "--set", "train.log_interval=1", "--set", "train.eval_max_chars=20000"]


def losses(run_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("train/loss")]


def killed_run(args, work: Path, rng: random.Random) -> None:
    """Start, kill -9 at a random moment, resume; ``args.kills`` times; then finish."""
    last = work / "checkpoints" / "killed" / "last.pt"
    for i in range(args.kills):
        cmd = train_args(args.data, args.max_steps)
        cmd += ["--resume", "killed"] if last.exists() else ["--run-name", "killed"]
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_s = rng.uniform(args.min_wait, args.max_wait)
        time.sleep(wait_s)
        proc.kill()
        proc.wait()
        step = load_checkpoint(last)["state"]["step"] if last.exists() else None
        print(f"kill {i + 1}: SIGKILL after {wait_s:.1f} s (exit {proc.returncode}); "
              f"last.pt then at step {step}", flush=True)
    cmd = train_args(args.data, args.max_steps) + ["--resume", "killed"]
    subprocess.run(cmd, cwd=work, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tinyshakespeare")
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--min-wait", type=float, default=4.0, help="seconds")
    parser.add_argument("--max-wait", type=float, default=14.0, help="seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    args = parser.parse_args()
    print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, torch {torch.__version__}")
    work = Path(tempfile.mkdtemp(prefix="charlm-kill-"))
    began = time.perf_counter()
    subprocess.run(train_args(args.data, args.max_steps) + ["--run-name", "straight"], cwd=work,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"uninterrupted run: {args.max_steps} steps in {time.perf_counter() - began:.1f} s")
    killed_run(args, work, random.Random(args.seed))
    a = load_checkpoint(work / "checkpoints" / "straight" / "last.pt")
    b = load_checkpoint(work / "checkpoints" / "killed" / "last.pt")
    same = all(torch.equal(t, b["model"][k]) for k, t in a["model"].items())
    diff = max((t - b["model"][k]).abs().max().item() for k, t in a["model"].items())
    la, lb = losses(work / "runs" / "straight"), losses(work / "runs" / "killed")
    print(f"final step: {a['state']['step']} vs {b['state']['step']}; weights identical: "
          f"{same} (max abs difference {diff:.3g}); per-step losses identical: {la == lb} "
          f"({len(la)} vs {len(lb)} steps)")
    print(f"work folder: {work}")
    return 0 if same and la == lb else 1


if __name__ == "__main__":
    sys.exit(main())
