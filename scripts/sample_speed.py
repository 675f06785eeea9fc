"""Sampling speed of trained checkpoints: characters per second at batch 1 (and 32).

    python scripts/sample_speed.py checkpoints/a/best.pt checkpoints/b/best.pt --length 2000
    python scripts/sample_speed.py RUN --device cuda --batch-sizes 1,64 --output sample.json

Each checkpoint's model generates ``--length`` characters per stream from a newline, after a
short warm-up, on the CPU unless ``--device`` says otherwise, at each of ``--batch-sizes``
(streams generated together; chars/s counts every stream's characters); prints the machine
and one line each, and with ``--output`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from charlm.generation.sampling import generate, prepare_prime
from charlm.store.names import open_checkpoint
from charlm.store.restore import restore_model
from charlm.system.device import resolve_device


def chars_per_s(model, prime: torch.Tensor, length: int, batch: int) -> float:
    list(generate(model, prime, 20, batch))                      # warm-up
    start = time.perf_counter()
    for _ in generate(model, prime, length, batch):
        pass
    if prime.device.type == "cuda":
        torch.cuda.synchronize()
    return batch * length / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="1,32", help="comma-separated, e.g. 1,64")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    print(f"machine: {platform.platform()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {device}{f' ({gpu})' if gpu else ''}")
    report = {"platform": platform.platform(), "torch": str(torch.__version__),
              "device": str(device), "gpu": gpu, "length": args.length, "models": []}
    for target in args.checkpoints:
        path, ckpt = open_checkpoint(target, map_location=device)
        model, vocab, cfg = restore_model(ckpt, device, source=str(path))
        prime = prepare_prime(vocab, None)[1].to(device)
        m = cfg.model
        rates = {b: chars_per_s(model, prime, args.length, b) for b in batches}
        report["models"].append({"checkpoint": str(path), "cell": m.cell,
                                 "num_layers": m.num_layers, "hidden_size": m.hidden_size,
                                 "parameters": model.num_parameters(),
                                 "chars_per_s": {str(b): r for b, r in rates.items()}})
        print(f"{path}: {m.cell} {m.num_layers} x {m.hidden_size}, {model.num_parameters():,} "
              f"parameters: " + ", ".join(f"batch {b} {r:,.0f} chars/s"
                                          for b, r in rates.items()), flush=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
