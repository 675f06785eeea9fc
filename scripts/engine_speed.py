"""Batch-1 sampling speed of the torch engine and the onnx engine (fp32, int8): one process,
one character per step, the state carried, untrained weights of a 65-character vocabulary
(the speed does not depend on the weights).

    taskset -c 0 python scripts/engine_speed.py [--chars 2000] [--threads 1]

Prints the machine (lscpu's model name) and, per model, chars/s and the ratios to torch.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from charlm.config import from_dict
from charlm.data.vocab import Vocab
from charlm.engine.model import OnnxModel
from charlm.engine.sampling import generate as onnx_generate
from charlm.export.folder import export_model
from charlm.generation.sampling import generate as torch_generate
from charlm.models.lm import CharLM

MODELS = (("lstm", 512, 2), ("lstm", 256, 2), ("mingru", 256, 2))
VOCAB = Vocab("".join(sorted(set("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))))


def machine() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                 if ln.startswith("Model name")), "unknown CPU")


def chars_per_s(draw, chars: int) -> float:
    draw(50)                                   # warm up
    start = time.perf_counter()
    draw(chars)
    return chars / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; {args.threads} thread(s); batch 1, {args.chars} chars each")
    prime = torch.tensor([0])
    for cell, H, L in MODELS:
        torch.manual_seed(0)
        model = CharLM(VOCAB.size, cell, 64, H, L).eval()
        cfg = from_dict({"model": {"cell": cell, "hidden_size": H, "num_layers": L,
                                   "embedding_size": 64}})
        folder = Path(tempfile.mkdtemp()) / "export"
        export_model(model, VOCAB, cfg, folder, int8=True)
        speed = {"torch": chars_per_s(lambda n: list(torch_generate(model, prime, n, 1, 1.0)),
                                      args.chars)}
        for kind in ("fp32", "int8"):
            onnx = OnnxModel(folder, kind, threads=args.threads)
            rng = np.random.default_rng(0)
            speed[f"onnx {kind}"] = chars_per_s(
                lambda n: list(onnx_generate(onnx, np.array([0]), n, 1, 1.0, rng=rng)),
                args.chars)
        base = speed["torch"]
        print(f"{cell} {L} x {H}: " + ", ".join(
            f"{k} {v:,.0f} chars/s ({v / base:.2f}x)" for k, v in speed.items()))


if __name__ == "__main__":
    main()
