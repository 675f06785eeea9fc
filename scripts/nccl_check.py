"""The collectives charlm's data-parallel training uses, on NCCL, in a 1-process torchrun job.

    python -m torch.distributed.run --standalone --nproc_per_node=1 scripts/nccl_check.py \
        --output nccl.json

Why a script of its own: with one process (``WORLD_SIZE=1``) ``charlm train`` under torchrun
runs as a single process and starts no process group (``charlm.system.distributed``), and NCCL
refuses two ranks on one GPU, so on a one-GPU machine charlm's NCCL path can only be checked
piece by piece. This builds what ``init_from_env`` builds (an NCCL group, a gloo control group)
and runs each collective ``Dist`` calls, plus one DistributedDataParallel step of a CharLM
whose gradients must equal a plain copy's. Prints one line per check and writes JSON; exit
status 0 when all pass.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # charlm from this checkout

from charlm.models import CharLM  # noqa: E402


def ddp_step_matches(device: torch.device) -> bool:
    """One forward and backward of a DDP-wrapped CharLM against a plain copy (world size 1:
    DDP's all-reduce of the gradients must leave them as they are)."""
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    plain = CharLM(65, "lstm", 16, 64, 2).to(device)
    ids = [device.index] if device.type == "cuda" else None
    wrapped = DistributedDataParallel(CharLM(65, "lstm", 16, 64, 2).to(device), device_ids=ids)
    wrapped.module.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 65, (4, 33), device=device)
    for model in (plain, wrapped):
        logits, _ = model(ids[:, :-1], None)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
    return all(torch.equal(p.grad, q.grad) for p, q in
               zip(plain.parameters(), wrapped.module.parameters()))


def checks(device: torch.device, control) -> dict[str, bool]:
    """Each collective of ``charlm.system.distributed.Dist`` on its own group."""
    world = dist.get_world_size()
    summed = torch.ones(3, device=device)
    dist.all_reduce(summed)                                                  # Dist.sum_
    clock = torch.tensor([1.5, 0.0], dtype=torch.float64)
    dist.all_reduce(clock, op=dist.ReduceOp.MAX, group=control)              # Dist.agree
    block = torch.arange(6.0, device=device).view(1, 2, 3)
    parts = [torch.empty_like(block) for _ in range(world)]
    dist.all_gather(parts, block)                                            # Dist.gather_rows
    objects = [None] * world
    dist.all_gather_object(objects, {"rank": dist.get_rank()}, group=control)
    dist.barrier(group=control)                                              # Dist.barrier
    backend = dist.get_backend()
    return {f"all_reduce ({backend})": torch.equal(summed, torch.full_like(summed, world)),
            "all_reduce max (gloo control group)": clock.tolist() == [1.5, 0.0],
            f"all_gather ({backend})": torch.equal(torch.cat(parts, 1)[:, :2], block),
            "all_gather_object (gloo)": objects[0] == {"rank": 0},
            "DDP step equals a plain step": ddp_step_matches(device)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["nccl", "gloo"], default="nccl",
                        help="gloo runs the same checks on the CPU (to test this script)")
    parser.add_argument("--output", help="also write the results to this JSON file")
    args = parser.parse_args()
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=120)
    dist.init_process_group(args.backend, timeout=timeout)
    control = dist.new_group(backend="gloo", timeout=timeout)
    try:
        results = checks(device, control)
    finally:
        dist.destroy_process_group()
    for name, ok in results.items():
        print(f"{name}: {'ok' if ok else 'FAILED'}")
    report = {"backend": args.backend, "world_size": int(os.environ.get("WORLD_SIZE", "1")),
              "torch": str(torch.__version__), "checks": results}
    if device.type == "cuda":
        version = torch.cuda.nccl.version()
        report |= {"gpu": torch.cuda.get_device_name(device), "nccl_version":
                   ".".join(map(str, version)) if isinstance(version, tuple) else str(version)}
        print(f"NCCL {report['nccl_version']} on {report['gpu']}")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
