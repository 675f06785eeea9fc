"""The default search space: what a tune draws when the ``tune:`` section does not say, for
the cores chosen and the time of a trial.

The ranges are centred on what trains well in 180 s on a 2-core CPU (the LSTM 2 x 256 of
``configs/shakespeare.yaml``) and scale with the trial's time: the width of a compute-optimal
model grows about as the fourth root of its compute (its parameters as the square root, and
they grow as the square of the width), so a trial 16 times longer centres its widths twice as
wide. Each core gets the width that costs about what the LSTM's does (a GRU has 3 gate blocks
to the LSTM's 4, an RNN one, IndRNN's recurrence is elementwise).

Shape legend: H hidden units, L layers, E embedding size, B streams, T characters per step.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

REFERENCE_S = 180.0  # the trial time the widths below are for
WIDTH = {"rnn": 512, "lstm": 256, "gru": 296, "mingru": 264, "minlstm": 248, "indrnn": 512}
LAYERS = {"indrnn": (2, 4)}  # (fewest, most); every other core 1 to 3
BATCH_SIZES = (16, 32, 64, 128)
SEQ_LENS = (32, 64, 128, 256)
MIN_CHUNKS = 10  # a batch layout is offered when the train split holds 10 of its steps
DEFAULT = "the default tune space"  # the source named in errors about these entries


def default_entries(cells: tuple[str, ...], trial_time_s: float, train_chars: int
                    ) -> dict[tuple[str | None, str], Any]:
    """The default space as ``tune:`` section entries.

    Args:
        cells: the cores to draw among (one: the cell is fixed).
        trial_time_s: each trial's training time, seconds.
        train_chars: characters of the train split (batch layouts that do not fit in it
            :data:`MIN_CHUNKS` times are left out).
    Returns:
        ``{(condition or None, dotted key): spec}``, each spec as a ``tune:`` section gives it
        (a range mapping, a list of choices or a value).
    """
    scale = trial_time_s / REFERENCE_S
    entries: dict[tuple[str | None, str], Any] = {
        (None, "model.cell"): list(cells) if len(cells) > 1 else cells[0]}
    if len(cells) == 1:
        entries |= _core_entries(cells[0], scale, None)
    for cell in cells if len(cells) > 1 else ():
        entries |= _core_entries(cell, scale, f"model.cell={cell}")
    entries |= {
        (None, "model.embedding_size"): {"low": 16, "high": 128, "log": True},
        (None, "model.dropout"): {"low": 0.0, "high": round(min(0.5, 0.1 + 0.09 * scale), 2)},
        (None, "optim.lr"): {"low": 1e-3, "high": 2e-2, "log": True},
        (None, "optim.warmup_steps"): {"low": 10, "high": max(20, round(270 * scale)),
                                       "log": True},
        (None, "optim.grad_clip"): {"low": 0.25, "high": 5.0, "log": True},
        (None, "optim.weight_decay"): {"low": 0.0, "high": 0.1},
    }
    return entries | _layout_entries(train_chars)


def _core_entries(cell: str, scale: float, when: str | None
                  ) -> dict[tuple[str | None, str], Any]:
    """Width and depth for one core: widths from half to twice its centre, log scale."""
    centre = WIDTH.get(cell, WIDTH["lstm"]) * scale ** 0.25
    fewest, most = LAYERS.get(cell, (1, 3))
    return {(when, "model.hidden_size"): {"low": max(8, round(centre / 2)),
                                          "high": max(16, round(centre * 2)), "log": True},
            (when, "model.num_layers"): {"low": fewest, "high": most}}


def _layout_entries(train_chars: int) -> dict[tuple[str | None, str], Any]:
    """Batch sizes and BPTT lengths whose steps fit the train split (at least the smallest
    of each, so that a tiny corpus still gets one layout: its trials then say what does not
    fit)."""
    def fits(b: int, t: int) -> bool:
        return b * t * MIN_CHUNKS <= train_chars

    batches = [b for b in BATCH_SIZES if fits(b, SEQ_LENS[0])] or [BATCH_SIZES[0]]
    lengths = [t for t in SEQ_LENS if fits(BATCH_SIZES[0], t)] or [SEQ_LENS[0]]
    return {(None, "train.batch_size"): batches if len(batches) > 1 else batches[0],
            (None, "train.seq_len"): lengths if len(lengths) > 1 else lengths[0]}
