"""Scoring text: the next-character loss, and evaluation over a whole split with the hidden
state carried through it.

Shape legend: B batch (streams), T time steps, V vocab size, L layers, H hidden size.
Losses are mean negative log-likelihood of the next character in nats/char
(:mod:`charlm.metrics` converts them to bpc).
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch
import torch.nn.functional as F

from charlm.data import TBPTTBatches
from charlm.data.layout import IGNORE
from charlm.system.distributed import SINGLE, Dist
from charlm.errors import DataError
from charlm.models import CharLM, Hidden, eval_mode, map_hidden

logger = logging.getLogger(__name__)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
            ) -> torch.Tensor:
    """Next-character cross-entropy.

    Args:
        logits: (B, T, V) unnormalised scores.
        targets: (B, T) int64 ids in [0, V); :data:`~charlm.data.layout.IGNORE` marks a
            position that is not scored (padding).
        reduction: ``mean`` (nats per scored char), ``sum`` (nats) or ``none``.
    Returns:
        Scalar tensor (``none``: (B * T,) nats of each position, 0 where unscored);
        :func:`charlm.metrics.nats_to_bits` turns nats/char into bpc.
    Raises:
        ValueError: if the batch or time sizes of logits and targets differ.
    """
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} "
                         f"differ in (B, T)")
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction=reduction,
                           ignore_index=IGNORE)


@torch.inference_mode()
def evaluate(model: CharLM, ids: np.ndarray, batch_size: int, seq_len: int,
             max_chars: int | None = None, warmup: int = 512, dist: Dist = SINGLE
             ) -> tuple[float, int]:
    """Mean loss over a split, the hidden state carried through it.

    The split is laid out as in training (:class:`~charlm.data.TBPTTBatches`), each stream's
    state carried chunk to chunk, so every target in ``ids[1:]`` is scored exactly once. So
    that the batch size hardly matters, each stream but the first starts from the state left
    by reading the ``warmup`` characters before it (read, not scored); the first stream starts
    from zeros, as a batch of 1 would. Streams shorter than ``warmup`` would make the figure
    depend on the batch size, so the number of streams is capped at (N - 1) // warmup (and
    the cap logged). Under distributed training each rank scores its own block of streams and
    the sums are reduced, so the figure is the same as one process's.

    Args:
        model: the plain module (not DDP-wrapped: evaluation needs no gradient exchange).
        ids: (N,) encoded split (an array or a memory map).
        batch_size: streams; capped as above.
        max_chars: score only the first ``max_chars`` targets; None scores all.
        warmup: characters of context read before each stream (0 starts streams from zeros).
        dist: this process's place in a distributed job.
    Returns:
        ``(loss_nats, num_chars)``: mean nats/char and how many targets were scored.
    Raises:
        DataError: if the split has fewer than 2 characters.
    """
    ids = scored_ids(ids, max_chars)
    device = next(model.parameters()).device
    B = stream_count(len(ids) - 1, batch_size, warmup)
    batches = TBPTTBatches(ids, B, seq_len, device, rows=dist.rows(B, exact=False))
    # float64 so that millions of summed nats lose nothing; MPS has no float64
    total = torch.zeros((), dtype=torch.float32 if device.type == "mps" else torch.float64,
                        device=device)
    with eval_mode(model):
        hidden = _warm_state(model, batches, warmup)
        for j in range(batches.num_chunks if batches.num_rows else 0):
            x, y = batches.chunk(j)
            logits, hidden = model(x, hidden)
            total += loss_fn(logits, y, reduction="sum")
    pairs = len(ids) - 1
    return dist.sum_(total).item() / pairs, pairs


def scored_ids(ids: np.ndarray, max_chars: int | None) -> np.ndarray:
    """``ids`` cut to ``max_chars`` targets (None: all), checked to hold one.

    Raises:
        DataError: if fewer than 2 ids are left.
    """
    if max_chars is not None:
        ids = ids[:max_chars + 1]
    if len(ids) < 2:
        raise DataError(f"the split to evaluate has {len(ids)} character(s); it needs at least "
                        f"2 (its size comes from data.train_frac and data.val_frac)")
    return ids


def stream_count(pairs: int, batch_size: int, warmup: int) -> int:
    """Streams to score ``pairs`` targets with: ``batch_size``, but none shorter than
    ``warmup`` (and at least one)."""
    B = min(batch_size, pairs, max(1, pairs // warmup) if warmup else pairs)
    if B < batch_size:
        _say_once("scoring %d targets as %d stream(s), not %d, so that each stream is at "
                    "least %d long and the figure does not depend on the batch size", pairs, B,
                    batch_size, warmup)
    return B


@functools.lru_cache(maxsize=16)
def _say_once(message: str, *args) -> None:
    """Log a message once per process for the same arguments (periodic evaluations repeat)."""
    logger.info(message, *args)


def _warm_state(model: CharLM, batches: TBPTTBatches, warmup: int) -> Hidden | None:
    """(L, B', H) state of each of these rows' streams after reading the ``W = min(warmup, S)``
    inputs before it; zeros for stream 0. None when there is nothing to warm."""
    W = min(warmup, batches.stream_len)
    if W == 0 or len(batches.before) == 0:
        return None
    before = batches.before[:, -W:].long()            # (rows with a predecessor, W)
    first = batches.first_row == 0
    _, hidden = model(torch.cat([before[:1], before]) if first else before)
    if not first:
        return hidden
    return map_hidden(hidden, lambda h: torch.cat([torch.zeros_like(h[:, :1]), h[:, 1:]], 1))


@torch.inference_mode()
def surprisal(model: CharLM, ids: torch.Tensor, context: torch.Tensor, chunk: int = 2048
              ) -> torch.Tensor:
    """Each character's surprisal ``-ln p(x_t | context, x_<t)``, read as one stream.

    The ``context`` (a newline, say) is read first, from a zero state, so that the first
    character of ``ids`` is scored too; the state is carried through ``ids`` in chunks.

    Args:
        ids: (N,) int64 ids to score, on the model's device.
        context: (T0,) int64 ids read before them (not scored), T0 >= 1.
        chunk: characters per forward pass (memory, not the result).
    Returns:
        (N,) float32 nats of each character of ``ids``; :mod:`charlm.metrics` converts.
    """
    text = torch.cat([context, ids])                    # (T0 + N,)
    x, y = text[:-1].unsqueeze(0), text[1:].unsqueeze(0)  # (1, T0 + N - 1)
    out, hidden = [], None
    with eval_mode(model):
        for i in range(0, x.shape[1], chunk):
            logits, hidden = model(x[:, i:i + chunk], hidden)  # (1, T', V)
            out.append(loss_fn(logits, y[:, i:i + chunk], reduction="none"))
    return torch.cat(out)[len(context) - 1:]
