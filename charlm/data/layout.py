"""Contiguous train / val / test splits and the truncated-BPTT batch layout.

Shape legend: B batch (streams), T time steps (``seq_len``), S steps per stream, N ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from charlm.errors import DataError

logger = logging.getLogger(__name__)


def split_ids(ids: np.ndarray, train_frac: float, val_frac: float) -> dict[str, np.ndarray]:
    """Contiguous train / val / test slices: train first, then val, the rest test.

    Args:
        ids: (N,) encoded corpus.
        train_frac: fraction of N in the train split.
        val_frac: fraction of N in the val split.
    Returns:
        ``{'train': (N_train,), 'val': (N_val,), 'test': (N_test,)}`` views of ``ids``.
    """
    n = len(ids)
    a = int(n * train_frac)
    # cumulative boundary, so 0.9 + 0.1 leaves no stray test character (nanoGPT's split)
    b = n if train_frac + val_frac >= 1.0 - 1e-9 else int(n * (train_frac + val_frac))
    return {"train": ids[:a], "val": ids[a:b], "test": ids[b:]}


def as_tensor(ids: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """(N,) ids as a tensor on ``device``.

    On the CPU this is a view of ``ids`` (a memory map stays a memory map: pages are read as
    steps touch them). Elsewhere the ids are copied to the device once, 16 Mi at a time, as
    uint8 or int32 (uint16 has few kernels off the CPU).
    """
    device = torch.device(device)
    if device.type == "cpu":
        return torch.from_numpy(ids) if ids.flags.writeable else torch.from_numpy(ids.copy())
    dtype = torch.uint8 if ids.dtype == np.uint8 else torch.int32
    out = torch.empty(len(ids), dtype=dtype, device=device)
    step = 16 << 20
    for i in range(0, len(ids), step):
        piece = np.asarray(ids[i:i + step]).astype(np.uint8 if dtype == torch.uint8 else np.int32)
        out[i:i + step].copy_(torch.from_numpy(piece), non_blocking=False)
    return out


IGNORE = -100  # a target that is not scored (F.cross_entropy's ignore_index)


@dataclass
class TBPTTBatches:
    """A split laid out as B contiguous streams for truncated back-propagation through time.

    The N ids give N - 1 (input, target) pairs. They are cut into B streams of S = (N-1) // B
    consecutive pairs; step j reads columns [jT, (j+1)T) of every stream, so row b of step j+1
    continues row b of step j and the hidden state can be carried across steps::

        pairs:   |----- stream 0 -----|----- stream 1 -----| ... |-- stream B-1 --|tail|
        step j:  [ jT : (j+1)T ] of each stream  ->  x, y of shape (B, T)

    One pass takes ``num_chunks`` = ceil(S / T) steps and uses every pair exactly once, in
    training as in evaluation: the last step is shorter when T does not divide S, and the
    last R = (N-1) - B*S < B pairs (the tail) continue stream B-1 in that last step, whose
    other rows are padded with unscored targets (:data:`IGNORE`).

    ``rows = (r0, r1)`` keeps streams r0..r1-1 of that layout (one rank's share under
    distributed training); the layout itself, S and the tail depend only on N and B.

    Raises:
        DataError: if the split has fewer than B + 1 ids (not one pair per stream).
    """

    ids: np.ndarray
    batch_size: int
    seq_len: int
    device: torch.device | str = "cpu"
    rows: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        pairs = self._pairs = len(self.ids) - 1
        B = self.batch_size
        if pairs < B:
            raise DataError(f"a split of {len(self.ids)} characters is too short for "
                            f"{B} streams; lower the batch size or give more text")
        self.stream_len = pairs // B  # S
        self._data = as_tensor(self.ids, self.device)
        used = B * self.stream_len
        r0, r1 = self.rows or (0, B)
        self.first_row, self.num_rows = r0, r1 - r0
        full = self._data[:used].view(B, self.stream_len)
        self.inputs = full[r0:r1]                                            # (B', S)
        self.targets = self._data[1:used + 1].view(B, self.stream_len)[r0:r1]  # (B', S)
        self.before = full[max(r0 - 1, 0):max(r1 - 1, 0)]  # rows r0-1..r1-2: the preceding streams
        self.tail_len = pairs - used if r1 == B else 0  # R, owned by the last row
        self._tail_start = used

    @property
    def num_chunks(self) -> int:
        """Steps in one pass over the split (the train epoch length)."""
        return -(-self.stream_len // self.seq_len)

    def chunk(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of step j, each (B', T') int64: T' = T except in the last step,
        which is shorter, or longer by the tail for the last row (targets :data:`IGNORE`
        pad the other rows)."""
        cols = slice(j * self.seq_len, (j + 1) * self.seq_len)
        x, y = self.inputs[:, cols].long(), self.targets[:, cols].long()
        if j < self.num_chunks - 1 or not self.tail_len or not self.num_rows:
            return x, y
        start, R = self._tail_start, self.tail_len
        pad = lambda t, v: torch.cat([t, t.new_full((t.shape[0], R), v)], dim=1)  # noqa: E731
        x, y = pad(x, 0), pad(y, IGNORE)
        x[-1, -R:] = self._data[start:start + R].long()
        y[-1, -R:] = self._data[start + 1:start + 1 + R].long()
        return x, y

    def pairs_in(self, j: int) -> int:
        """Targets step j trains on, over all B streams of the layout (every rank's): B·T, or
        less in the last, shorter step, plus the tail there."""
        return self.pairs_read(0, j + 1) - self.pairs_read(0, j)

    def pairs_read(self, epoch: int, chunk: int) -> int:
        """Targets trained on from the start of a run until ``chunk`` of ``epoch`` (the next
        step's position), over all B streams."""
        B, S = self.batch_size, self.stream_len
        tail = self._pairs - B * S if chunk >= self.num_chunks else 0
        return epoch * self._pairs + B * min(chunk * self.seq_len, S) + tail

    @property
    def num_pairs(self) -> int:
        """Targets covered by these rows in one pass (N - 1 for all rows)."""
        return self.num_rows * self.stream_len + self.tail_len


def check_trainable(n_train: int, batch_size: int, seq_len: int) -> None:
    """Refuse a train split that cannot give one full (B, T) step.

    Raises:
        DataError: with the sizes and what to change.
    """
    need = batch_size * seq_len + 1
    if n_train < need:
        raise DataError(f"the train split has {n_train} characters but one step of "
                        f"batch_size {batch_size} x seq_len {seq_len} needs {need}; lower "
                        f"--batch-size or --seq-len, or give a longer corpus")
