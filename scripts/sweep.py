"""Choose defaults by measurement: train one run per setting for a fixed wall-clock budget and
rank the settings by final val loss (nats/char).

    python scripts/sweep.py --config configs/shakespeare.yaml --budget 180 \\
        --data ../shared/data/tinyshakespeare.txt \\
        --trial "" --trial "model.cell=gru" --trial "model.hidden_size=384 optim.lr=0.004"

Each ``--trial`` is a space-separated list of ``SECTION.KEY=VALUE`` overrides on top of the
config ("" is the config itself). Runs are sequential, each alone on the machine (two runs at
once on a few cores slow each other unevenly). Budgets count evaluations, as in charlm train.
Prints the machine, one line per finished run and the ranking; ``--json`` keeps the results.
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


def run_trial(config: str, data: str, budget: float, sets: list[str], seed: int,
              work: Path, index: int) -> dict:
    """Train one setting for ``budget`` seconds; its steps, final and best val loss."""
    name = f"trial-{index}"
    cfg = build_config(config, sets, {
        "data.corpus": data, "train.max_time": budget, "train.seed": seed,
        "train.run_name": name, "train.progress": False,
        "train.checkpoint_dir": str(work / "checkpoints"), "train.log_dir": str(work / "runs")})
    result = train_run(cfg)
    best = torch.load(result.best_path, map_location="cpu", weights_only=True)
    return {"sets": sets, "steps": result.steps, "elapsed_s": round(result.elapsed_s, 1),
            "final_val_loss": result.val_loss,
            "best_val_loss": best["state"]["best_val_loss"]}


def main() -> None:
    """Parse the arguments, run the trials, print the ranking."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "shakespeare.yaml"))
    parser.add_argument("--data", default="tinyshakespeare")
    parser.add_argument("--budget", type=float, default=180.0, help="wall-clock seconds")
    parser.add_argument("--trial", action="append", default=[], metavar='"K=V K=V"')
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="charlm-sweep-"))
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; config "
          f"{args.config}, data {args.data}, budget {args.budget:g} s", flush=True)
    results = []
    for i, trial in enumerate(args.trial or [""]):
        r = run_trial(args.config, args.data, args.budget, trial.split(), args.seed, work, i)
        results.append(r)
        print(f"{r['final_val_loss']:.4f} final, {r['best_val_loss']:.4f} best, "
              f"{r['steps']} steps: {trial or '(config as is)'}", flush=True)
    print("\nranking (final val loss, nats/char; bpc):")
    for r in sorted(results, key=lambda r: r["final_val_loss"]):
        print(f"  {r['final_val_loss']:.4f} ({nats_to_bits(r['final_val_loss']):.4f})  "
              f"{' '.join(r['sets']) or '(config as is)'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
