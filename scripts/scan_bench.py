"""Where a minGRU layer's training time goes: the three scans against the gate GEMM.

    python scripts/scan_bench.py                 # B 32, T 64, H 512, as in docs/cores.md
    python scripts/scan_bench.py --hidden-size 264 --repeats 50
    python scripts/scan_bench.py --device cuda --output scan.json

Times one forward and backward pass (milliseconds) of minGRU's recurrence h_t = (1 - z_t) h_{t-1}
+ z_t h~_t over a (B, T, H) input with each scan of ``charlm.models.minimal``: the log-space
scan (``scan_log``, Heinsen 2023, used on GPUs), the sequential loop through autograd
(``scan_sequential``) and the sequential loop with its hand-written backward (``scan_linear``,
used on CPUs), with ``--compile`` also the first two under ``torch.compile``; then the layer's
gate GEMM (one ``nn.Linear(H, 2H)`` over B*T rows) for scale. Prints the machine first. Run
it alone: the figures are wall-clock, read after a device synchronisation on a GPU. minLSTM's
layer runs the same scans (only its gates differ), so these figures stand for both cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from charlm.models.minimal import g, log_g, scan_linear, scan_log, scan_sequential


def log_space(k: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    kz, kh = k.chunk(2, -1)
    return scan_log(-F.softplus(kz), -F.softplus(-kz) + log_g(kh), h0)


def linear_space(scan):
    def run(k: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        kz, kh = k.chunk(2, -1)
        z = torch.sigmoid(kz)
        return scan(1 - z, z * g(kh), h0)
    return run


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ms_per_pass(fn, args, repeats: int) -> float:
    """Mean milliseconds of ``fn(*args).sum().backward()`` after 3 warm-up passes."""
    device = args[0].device
    for _ in range(3):
        fn(*args).sum().backward()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(*args).sum().backward()
    synchronize(device)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of the log-space and autograd scans")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args()
    B, T, H = args.batch_size, args.seq_len, args.hidden_size
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    print(f"machine: {platform.platform()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, device {device}{f' ({gpu})' if gpu else ''}; B {B}, T {T}, "
          f"H {H}, forward + backward")
    torch.manual_seed(0)
    k = torch.randn(B, T, 2 * H, device=device, requires_grad=True)
    h0 = torch.rand(B, H, device=device) + 0.1
    scans = [("log-space scan (scan_log)", log_space),
             ("sequential, autograd (scan_sequential)", linear_space(scan_sequential)),
             ("sequential, own backward (scan_linear)", linear_space(scan_linear))]
    if args.compile:
        scans += [("torch.compile(log-space scan)", torch.compile(log_space)),
                  ("torch.compile(sequential, autograd)",
                   torch.compile(linear_space(scan_sequential)))]
    x = torch.randn(B * T, H, device=device, requires_grad=True)
    scans.append(("gate GEMM (Linear H -> 2H over B*T rows)",
                  torch.nn.Linear(H, 2 * H).to(device)))
    report = {"platform": platform.platform(), "torch": str(torch.__version__),
              "device": str(device), "gpu": gpu, "batch_size": B, "seq_len": T,
              "hidden_size": H, "repeats": args.repeats, "ms_per_pass": {}}
    for name, fn in scans:
        ms = ms_per_pass(fn, (x,) if name.startswith("gate GEMM") else (k, h0), args.repeats)
        report["ms_per_pass"][name] = ms
        print(f"  {name:<40} {ms:8.2f} ms", flush=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
