"""Data-parallel training on ``torch.distributed``: which rank owns which streams, and the few
collectives the training loop needs.

``torchrun --nproc_per_node=N -m charlm train ...`` starts N processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; :func:`init_from_env` reads them.
Without them (plain ``charlm train``) :data:`SINGLE` stands for one process and every method is
a no-op, so the training code has one path.

Shape legend: L layers, B global batch (streams), B' = B / world_size streams of one rank,
H hidden size.

Truncated BPTT under DDP: the B streams of the train split are cut into ``world_size``
contiguous blocks; rank r owns streams [r B', (r+1) B') and carries their (L, B', H) state. Each
rank's loss is a mean over B' T targets and DDP averages the gradients, so the update equals one
process's on the whole (B, T) batch.

References:
    Li et al. 2020, "PyTorch Distributed: experiences on accelerating data parallel training"
    (DistributedDataParallel, gradient bucketing).
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
from dataclasses import dataclass

import torch

from charlm.errors import DistributedError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """One process's place in the job: ``rank`` of ``world_size``, and ``local_rank`` on its
    machine. ``control`` is a gloo process group used for small CPU tensors (the clock and the
    stop flag), so agreeing on them never waits for a GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    control: object = None

    @property
    def enabled(self) -> bool:
        """True when there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, TensorBoard and progress."""
        return self.rank == 0

    def rows(self, batch_size: int, exact: bool = True) -> tuple[int, int]:
        """This rank's contiguous block of the ``batch_size`` streams.

        Args:
            exact: require equal blocks (training); evaluation allows unequal ones.
        Raises:
            DistributedError: if ``exact`` and ``batch_size`` is not a multiple of the world.
        """
        W = self.world_size
        if exact and batch_size % W:
            raise DistributedError(f"train.batch_size {batch_size} is not a multiple of the "
                                   f"{W} processes; use a --batch-size divisible by {W} (it is "
                                   f"the global batch, split across processes)")
        return self.rank * batch_size // W, (self.rank + 1) * batch_size // W

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place (on its own device) and return it."""
        if self.enabled:
            torch.distributed.all_reduce(tensor)
        return tensor

    def agree(self, *values: float) -> list[float]:
        """The maximum of each value over ranks (a clock, a stop flag), on every rank."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX, group=self.control)
        return t.tolist()

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's (L, B', H) block into (L, B, H) along dim 1."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, 1)

    def gather_objects(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj, group=self.control)
        return out

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.enabled:
            torch.distributed.barrier(group=self.control)

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``model`` in DistributedDataParallel (which broadcasts rank 0's weights)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


SINGLE = Dist()


def launched_by_torchrun() -> bool:
    """True when ``WORLD_SIZE`` says this process is one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device, timeout_s: float = 1800.0) -> tuple[Dist, torch.device]:
    """Join the job torchrun started: NCCL with one GPU per process, gloo on CPUs.

    Args:
        device: the device asked for; ``cuda`` becomes ``cuda:LOCAL_RANK``.
        timeout_s: how long a collective may wait for a missing rank, in seconds.
    Returns:
        ``(dist, device)``; :data:`SINGLE` and ``device`` unchanged outside torchrun.
    Raises:
        DistributedError: for more local processes than GPUs, or MPS (no backend).
    """
    if not launched_by_torchrun():
        return SINGLE, device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "mps":
        raise DistributedError("distributed training on mps is not supported; use --device cpu")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise DistributedError(f"local rank {local} has no GPU ({torch.cuda.device_count()} "
                                   f"visible); start at most that many processes per machine "
                                   f"with torchrun --nproc_per_node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    torch.distributed.init_process_group(backend, timeout=timeout)
    control = (torch.distributed.new_group(backend="gloo", timeout=timeout)
               if backend == "nccl" else None)  # None: the default (gloo) group
    logger.info("rank %d of %d (local rank %d), backend %s, device %s", rank, world, local,
                backend, device)
    return Dist(rank, world, local, control), device


def shutdown(dist: Dist, wait: bool = True) -> None:
    """Leave the process group (a no-op for a single process).

    The DDP wrapper holds the group through reference cycles (its hooks), so it is
    collected first: freed later, at interpreter exit, its C++ parts could outlive the group
    and abort the process ("terminate called without an active exception").

    Args:
        wait: first wait for every rank (a clean end), so that no rank tears its connections
            down while another is still using them; False after an error on this rank.
    """
    if dist.enabled and torch.distributed.is_initialized():
        gc.collect()
        if wait:
            dist.barrier()
        torch.distributed.destroy_process_group()
