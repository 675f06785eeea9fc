"""Hidden state of any recurrent core: one ``(L, B, H)`` tensor, or a tuple of them (the
LSTM's ``(h, c)``). These helpers treat both alike, so no other code branches on the cell.

Shape legend: L layers, B batch, H hidden size.
"""

from __future__ import annotations

from typing import Callable, Union

import torch

Hidden = Union[torch.Tensor, tuple[torch.Tensor, ...]]


def detach_hidden(hidden: Hidden | None) -> Hidden | None:
    """Cut the autograd graph behind a hidden state (TBPTT), for every cell type.

    References:
        Williams & Peng 1990, "An efficient gradient-based algorithm for on-line training of
        recurrent network trajectories" (truncated BPTT).
    """
    if hidden is None:
        return None
    return map_hidden(hidden, torch.Tensor.detach)


def map_hidden(hidden: Hidden, fn: Callable[[torch.Tensor], torch.Tensor]) -> Hidden:
    """Apply ``fn`` to each ``(L, B, H)`` tensor of a hidden state (one, or LSTM's two)."""
    return tuple(fn(h) for h in hidden) if isinstance(hidden, tuple) else fn(hidden)


def output_state(hidden: Hidden) -> torch.Tensor:
    """The ``(L, B, H)`` part that each layer outputs: ``h`` (the LSTM's ``c`` is internal)."""
    return hidden[0] if isinstance(hidden, tuple) else hidden
