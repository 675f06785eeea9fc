"""Static evaluation: the mean loss over a whole split with the hidden state carried through
it, and each character's surprisal in a text.

Shape legend: B batch (streams), T time steps, V vocab size, L layers, H hidden size.
Losses are mean negative log-likelihood of the next character in nats/char
(:mod:`charlm.metrics` converts them to bpc).
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from charlm.data.layout import TBPTTBatches
from charlm.errors import DataError
from charlm.evaluation.loss import loss_fn
from charlm.metrics import unit_noun
from charlm.models.lm import READ_CHUNK, CharLM, eval_mode
from charlm.models.state import Hidden, map_hidden
from charlm.system.distributed import SINGLE, Dist

logger = logging.getLogger(__name__)


WARMUP = 512  # characters of context read before each stream of an evaluation


class EvaluationStopped(Exception):
    """A stop was asked for (SIGINT, SIGTERM) during an evaluation, which was left unfinished
    so that the run can save and exit within a container's grace period."""


@torch.inference_mode()
def evaluate(model: CharLM, ids: np.ndarray, batch_size: int, seq_len: int,
             max_chars: int | None = None, warmup: int = WARMUP, dist: Dist = SINGLE,
             stop: Callable[[], bool] | None = None) -> tuple[float, int]:
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
        max_chars: score about ``max_chars`` targets spread over the whole split: the first
            ``ceil(max_chars / (B·T))`` chunks of the B streams laid over all of it (each
            warmed up as usual), so that the sample's figure tracks the whole split's rather
            than its beginning's; None (or a ``max_chars`` that covers the split) scores all.
        warmup: characters of context read before each stream (0 starts streams from zeros).
        dist: this process's place in a distributed job.
        stop: asked between batches; True abandons it (one process only: all ranks sum).
    Returns:
        ``(loss_nats, num_chars)``: mean nats/char and how many targets were scored.
    Raises:
        DataError: if the split has fewer than 2 characters.
        EvaluationStopped: when ``stop`` says so.
    """
    ids = scorable(ids)
    device = next(model.parameters()).device
    B = stream_count(len(ids) - 1, batch_size, warmup)
    batches = TBPTTBatches(ids, B, seq_len, device, rows=dist.rows(B, exact=False))
    chunks = batches.num_chunks if max_chars is None else \
        min(batches.num_chunks, -(-max_chars // (B * seq_len)))
    # float64 so that millions of summed nats lose nothing; MPS has no float64
    total = torch.zeros((), dtype=torch.float32 if device.type == "mps" else torch.float64,
                        device=device)
    with eval_mode(model):
        hidden = _warm_state(model, batches, warmup)
        for j in range(chunks if batches.num_rows else 0):
            if stop is not None and stop():
                raise EvaluationStopped(f"stopped after {j} of {chunks} batches")
            x, y = batches.chunk(j)
            logits, hidden = model(x, hidden)
            total += loss_fn(logits, y, reduction="sum")
    pairs = batches.pairs_read(0, chunks)
    return dist.sum_(total).item() / pairs, pairs


def scorable(ids: np.ndarray, split: str = "the split", unit: str = "char",
             total: int | None = None, fix: str = "give it more text") -> np.ndarray:
    """``ids``, checked to hold at least one (context, target) pair: the one rule of what can
    be scored, for evaluation, dynamic evaluation and the val split of a training run.

    Args:
        ids: (N,) encoded split.
        split: how to name it (``the val split of corpus.txt``).
        unit: ``data.unit``, for the noun.
        total: the corpus's length, said beside the split's.
        fix: the options of the running command that give it more text.
    Raises:
        DataError: if fewer than 2 ids are given.
    """
    if len(ids) >= 2:
        return ids
    noun = unit_noun(unit)
    size = "is empty" if not len(ids) else f"has only 1 {noun}"
    of = f" ({total:,} {noun}{'' if total == 1 else 's'} in the corpus)" if total is not None \
        else ""
    raise DataError(f"{split} {size}{of}; scoring needs at least 2 (one to read, one to "
                    f"predict): {fix}")


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


def surprisal(model: CharLM, ids: torch.Tensor, context: torch.Tensor,
              chunk: int = READ_CHUNK) -> torch.Tensor:
    """Each character's surprisal ``-ln p(x_t | context, x_<t)``, read as one stream
    (:func:`surprisals` over one piece).

    Args:
        ids: (N,) int64 ids to score, on the model's device.
        context: (T0,) int64 ids read before them (not scored), T0 >= 1.
        chunk: characters per forward pass (memory, not the result).
    Returns:
        (N,) float32 nats of each character of ``ids``; :mod:`charlm.metrics` converts.
    """
    return torch.cat([nats for _, nats in surprisals(model, [ids], context, chunk)])


def surprisals(model: CharLM, pieces: Iterable[torch.Tensor], context: torch.Tensor,
               chunk: int = READ_CHUNK) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each character's surprisal ``-ln p(x_t | context, x_<t)`` of a text that comes in
    pieces, the state carried across them: memory is bounded by ``chunk``, however long the
    text (a 1 GB file is scored in what one chunk needs).

    The ``context`` (a newline, say) is read first, from a zero state, so that the first
    character of the text is scored too.

    Args:
        pieces: (N_i,) int64 ids, the text in order, on the model's device; empty ones skipped.
        context: (T0,) int64 ids read before them (not scored), T0 >= 1.
        chunk: characters per forward pass (memory, not the result).
    Yields:
        ``(ids, nats)``: (n,) int64 ids of the next ``n <= chunk`` characters and their (n,)
        float32 nats; :mod:`charlm.metrics` converts.
    """
    hidden, last = None, context[-1:]
    with eval_mode(model), torch.inference_mode():
        if len(context) > 1:
            _, hidden = model.read(context[:-1].unsqueeze(0))
        for piece in pieces:
            for i in range(0, len(piece), chunk):
                y = piece[i:i + chunk]                                    # (n,)
                logits, hidden = model(torch.cat([last, y[:-1]]).unsqueeze(0), hidden)
                last = y[-1:]
                yield y, loss_fn(logits, y.unsqueeze(0), reduction="none")  # (n,) nats
