"""Drawing the next id with numpy: greedy, temperature, top-k and nucleus (top-p), the same
rules as :func:`charlm.generation.sampling.pick_next` (random draws differ from torch's; the
greedy text is the same). Torch-free.

Shape legend: B samples, V vocab size.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from charlm.engine.model import OnnxModel, State


def pick_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
              top_p: float | None = None, rng: np.random.Generator | None = None
              ) -> np.ndarray:
    """Draw one id per row of (B, V) logits: (B,) int64 ids.

    Args:
        temperature: divides the logits; 0 is greedy (argmax).
        top_k: keep only the k highest-scoring ids.
        top_p: keep the smallest set of most likely ids whose probability reaches top_p.
        rng: numpy generator for repeatable draws.
    """
    if temperature == 0:
        return logits.argmax(axis=-1).astype(np.int64)
    rng = rng or np.random.default_rng()
    z = logits.astype(np.float64)
    drop = None
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k:].min(axis=-1, keepdims=True)
        drop = z < kth
    z = (z - z.max(axis=-1, keepdims=True)) / temperature
    if drop is not None:
        z = np.where(drop, -np.inf, z)
    probs = np.exp(z)
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=-1)
        outside = np.cumsum(sorted_p, axis=-1) - sorted_p >= top_p
        outside[:, 0] = False                                   # the most likely id stays
        kept = np.zeros_like(probs)
        np.put_along_axis(kept, order, np.where(outside, 0.0, sorted_p), axis=-1)
        probs = kept / kept.sum(axis=-1, keepdims=True)
    cum = probs.cumsum(axis=-1)
    u = rng.random((probs.shape[0], 1)) * cum[:, -1:]
    return np.minimum((cum < u).sum(axis=-1), probs.shape[-1] - 1).astype(np.int64)


def generate(model: OnnxModel, prime_ids: np.ndarray, length: int, num_samples: int = 1,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             rng: np.random.Generator | None = None, state: State | None = None
             ) -> Iterator[np.ndarray]:
    """Yield ``length`` new ids for ``num_samples`` samples drawn together, one graph step
    each (the prime read once, step by step, at batch 1 from a zero state).

    Args:
        prime_ids: (T0,) ids of the priming text, T0 >= 1 (the same for every sample).
        state: the state to start from; None for zeros.
    Yields:
        (B,) int64 ids of the next character of each sample.
    """
    B, prime_ids = num_samples, np.asarray(prime_ids, np.int64)
    if state is None:       # every sample reads the same prime: read it once, copy its state
        logits, state = model.feed(prime_ids[None], model.zero_state(1))
        logits, state = np.repeat(logits, B, 0), [np.repeat(s, B, axis=1) for s in state]
    else:
        logits, state = model.feed(np.broadcast_to(prime_ids, (B, len(prime_ids))), state)
    for i in range(length):
        ids = pick_next(logits, temperature, top_k, top_p, rng)
        yield ids
        if i + 1 < length:
            logits, state = model.step(ids, state)
