"""The next-character loss: cross-entropy in nats, unscored positions left out.

Shape legend: B batch (streams), T time steps, V vocab size. :mod:`charlm.metrics` converts
nats/char to bpc.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charlm.data.layout import IGNORE


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
