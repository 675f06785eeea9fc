"""Sampling speed of trained checkpoints: characters per second at batch 1 (and 32).

    python scripts/sample_speed.py checkpoints/a/best.pt checkpoints/b/best.pt --length 2000

Each checkpoint's model generates ``--length`` characters from a newline, after a short
warm-up, on the CPU unless ``--device`` says otherwise; prints the machine and one line each.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"machine: {platform.platform()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {device}")
    for target in args.checkpoints:
        path, ckpt = open_checkpoint(target, map_location=device)
        model, vocab, cfg = restore_model(ckpt, device, source=str(path))
        prime = prepare_prime(vocab, None)[1].to(device)
        m = cfg.model
        rates = [chars_per_s(model, prime, args.length, b) for b in (1, 32)]
        print(f"{path}: {m.cell} {m.num_layers} x {m.hidden_size}, {model.num_parameters():,} "
              f"parameters: batch 1 {rates[0]:,.0f} chars/s, batch 32 {rates[1]:,.0f} chars/s")


if __name__ == "__main__":
    main()
