"""The loss of an exported graph over a text, the state carried through it. Torch-free.

Shape legend: B streams, V vocab size. Losses are mean nats per character (or byte).
"""

from __future__ import annotations

import numpy as np

from charlm.engine.model import OnnxModel
from charlm.errors import DataError


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(B, V) -> (B, V) log-probabilities, in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def score_ids(model: OnnxModel, ids: np.ndarray, batch_size: int = 1) -> tuple[float, int]:
    """Mean loss of every next id of ``ids`` (each of ``ids[1:]`` scored once).

    The text is cut into ``batch_size`` contiguous streams stepped together, each from the
    zero state (the last stream also takes the remainder, padded where it runs past the
    others); batch 1 is one stream through the whole text.

    Args:
        ids: (N,) ids, N >= 2.
        batch_size: B, streams scored in parallel (capped so that each has >= 2 ids).
    Returns:
        ``(loss_nats, num_targets)``.
    Raises:
        DataError: if there is nothing to score (N < 2).
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 2:
        raise DataError("the text has fewer than 2 characters: nothing to score; give it more "
                        "text")
    pairs = len(ids) - 1
    B = max(1, min(batch_size, pairs // 64 or 1))
    per = pairs // B
    starts = np.arange(B) * per
    ends = np.append(starts[1:], pairs)                 # stream b scores targets start+1..end
    longest = int((ends - starts).max())
    total, state = 0.0, model.zero_state(B)
    for t in range(longest):
        live = starts + t < ends                         # (B,) rows with a target at t
        pos = np.minimum(starts + t, pairs - 1)
        logits, state = model.step(ids[pos], state)
        logp = log_softmax(logits)[np.arange(B), ids[pos + 1]]
        total -= float(logp[live].sum())
    return total / pairs, pairs
