"""Model quality per second of compute: val loss against wall-clock time on tiny-shakespeare.

Trains one run per budget with charlm's shipped config (nanoGPT's split: first 90% train, last
10% val) and prints val loss (nats/char) and bpc at each evaluation against the training
seconds spent so far (evaluations included), so budgets of 180 s and 600 s compare with other
tools run on the same machine.

    python scripts/bench_quality.py --data ../shared/data/tinyshakespeare.txt --budgets 180 600
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from charlm.config import build_config
from charlm.metrics import nats_to_bits
from charlm.training.run import train_run

ROOT = Path(__file__).resolve().parents[1]


def curve(log_dir: Path) -> list[tuple[int, float, float]]:
    """``[(step, elapsed_s, val_loss)]`` from a run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    seconds = {e.step: e.value for e in events.Scalars("val/elapsed_s")}
    return [(e.step, seconds[e.step], e.value) for e in events.Scalars("loss/val")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tinyshakespeare")
    parser.add_argument("--config", default=str(ROOT / "configs" / "shakespeare.yaml"))
    parser.add_argument("--budgets", type=float, nargs="+", default=[180.0, 600.0],
                        help="wall-clock seconds, one run each")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        metavar="SECTION.KEY=VALUE")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the curves here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="charlm-quality-"))
    print(f"machine: {platform.platform()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; config {args.config} {' '.join(args.sets)}")
    report = {}
    for budget in args.budgets:
        name = f"quality-{budget:g}s"
        cfg = build_config(args.config, args.sets, {
            "data.corpus": args.data, "train.max_time": budget, "train.seed": args.seed,
            "train.run_name": name, "train.progress": False,
            "train.checkpoint_dir": str(work / "checkpoints"),
            "train.log_dir": str(work / "runs")})
        result = train_run(cfg)
        points = curve(work / "runs" / name)
        report[budget] = points
        print(f"\nbudget {budget:g} s: {result.steps} steps in {result.elapsed_s:.1f} s")
        print(f"{'step':>6} {'seconds':>8} {'val loss':>9} {'bpc':>7}")
        for step, seconds, loss in points:
            print(f"{step:>6} {seconds:>8.1f} {loss:>9.4f} {nats_to_bits(loss):>7.4f}")
        best = min(loss for _, _, loss in points)
        print(f"budget {budget:g} s: final val loss {points[-1][2]:.4f} nats/char "
              f"({nats_to_bits(points[-1][2]):.4f} bpc), best {best:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
