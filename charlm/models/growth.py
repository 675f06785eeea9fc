"""Growing a trained model's vocabulary, for fine-tuning on text with characters it never
saw (``charlm train --init-from CKPT --grow-vocab``).

The vocabulary stays sorted, so the old characters get new ids; their rows move with them, and
the new characters' rows are set by one rule:

* embedding: the mean of the old rows (a new character enters as an "average" input);
* decoder: weights 0 and bias ``min(old biases) - ln(V_old)``, so a new character's logit is
  that constant whatever the state: below every old character's bias, it starts rare and is
  learnt from the text; the old characters' logits are unchanged.

Shape legend: V vocabulary size (V0 before, V1 after), E embedding size, H hidden size.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor


def grow_vocab_rows(state: Mapping[str, Tensor], old_to_new: Sequence[int], vocab_size: int
                    ) -> tuple[dict[str, Tensor], float]:
    """A CharLM state dict with ``vocab_size`` (V1) rows, the rule of the module doc.

    Args:
        state: the trained model's weights: ``embedding.weight`` (V0, E), ``decoder.weight``
            (V0, H), ``decoder.bias`` (V0,), and the core's, which are kept as they are.
        old_to_new: the new id of each old id (V0 distinct ids in ``range(V1)``).
        vocab_size: V1 >= V0.
    Returns:
        ``(state, bias)``: the grown weights and the new characters' decoder bias (logit).
    Raises:
        ValueError: if ``old_to_new`` does not fit the weights.
    """
    emb, dec_w, dec_b = (state[k] for k in ("embedding.weight", "decoder.weight",
                                            "decoder.bias"))
    V0 = emb.shape[0]
    index = torch.tensor(list(old_to_new), dtype=torch.long)
    if len(index) != V0 or len(set(old_to_new)) != V0 or not 0 <= min(old_to_new) <= \
            max(old_to_new) < vocab_size:
        raise ValueError(f"old_to_new must map the {V0} old ids to distinct ids below "
                         f"{vocab_size}")
    bias = float(dec_b.min()) - math.log(V0)
    grown = dict(state)
    grown["embedding.weight"] = _rows(emb, index, vocab_size, emb.mean(0))
    grown["decoder.weight"] = _rows(dec_w, index, vocab_size, torch.zeros_like(dec_w[0]))
    grown["decoder.bias"] = _rows(dec_b, index, vocab_size, dec_b.new_tensor(bias))
    return grown, bias


def _rows(old: Tensor, index: Tensor, size: int, fill: Tensor) -> Tensor:
    """(size, ...) rows: ``fill`` everywhere, ``old[i]`` at row ``index[i]``."""
    out = fill.expand(size, *old.shape[1:]).clone()
    out[index] = old
    return out
