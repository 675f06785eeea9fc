"""How much memory a model needs, estimated before it is built (nothing is allocated: the
parameters are counted on the ``meta`` device).

The estimates are lower bounds of what torch will ask for, in bytes of float32: good enough to
refuse, before anything is built or written, sizes that cannot fit (a digit too many in
``--hidden-size``), not a promise that sizes below them fit.

Shape legend: B streams (or samples, or beams), T time steps, V vocab size, E embedding size,
H hidden size, L layers.
"""

from __future__ import annotations

import torch

from charlm.config import ModelConfig, RunConfig
from charlm.config.cells import get_cell
from charlm.models.lm import create_model

FLOAT_BYTES = 4      # float32 weights, states and activations
ID_BYTES = 8         # one generated id kept in a Python list (a pointer; small ints are shared)
ADAMW_COPIES = 4     # weights, gradients, AdamW's exp_avg and exp_avg_sq
LOGIT_COPIES = 3     # logits, their log-softmax and its gradient, per position


def parameter_count(cfg: ModelConfig, vocab_size: int) -> int:
    """The model's parameters, counted on the ``meta`` device (no memory is spent)."""
    with torch.device("meta"):
        return create_model(cfg, vocab_size).num_parameters()


def _per_step(cfg: ModelConfig, vocab_size: int) -> int:
    """Floats one position of one stream keeps for backward: each layer's gates, states and
    output (B x T x L x H x that factor in all), its embedding and its logits."""
    spec = get_cell(cfg.cell)
    per_cell = len(spec.gates) + len(spec.state) + 1
    return cfg.num_layers * cfg.hidden_size * per_cell + cfg.embedding_size + \
        LOGIT_COPIES * vocab_size


def _per_read(cfg: ModelConfig, vocab_size: int) -> int:
    """Floats one position of one stream holds in an evaluation (no backward): its embedding,
    each layer's output, and its scores and their log-softmax."""
    return cfg.num_layers * cfg.hidden_size + cfg.embedding_size + 2 * vocab_size


def training_bytes(cfg: RunConfig, vocab_size: int, streams: int | None = None) -> int:
    """Bytes a run needs at once: parameters x 4 (weights, gradients, AdamW's two moments)
    and the larger of a training step's activations over a (B, T) chunk and an evaluation's
    over a (B_eval, T) one (bf16 halves the activations: autocast keeps weights in float32).

    Args:
        streams: B of this process (a DDP rank's share); None is ``train.batch_size``. The
            evaluation's streams are shared in the same proportion.
    """
    t = cfg.train
    B, T = streams or t.batch_size, t.seq_len
    B_eval = -(-t.eval_batch_size * B // t.batch_size)
    params = parameter_count(cfg.model, vocab_size)
    act_bytes = FLOAT_BYTES // 2 if t.precision == "bf16" else FLOAT_BYTES
    activations = max(B * _per_step(cfg.model, vocab_size),
                      B_eval * _per_read(cfg.model, vocab_size)) * T
    return FLOAT_BYTES * ADAMW_COPIES * params + act_bytes * activations


def generation_bytes(cfg: ModelConfig, vocab_size: int, rows: int, length: int) -> int:
    """Bytes of sampling ``rows`` samples (or searching with ``rows`` beams) of ``length``
    characters: the weights, each row's state and scores per step, and its ids kept until it
    is written."""
    state = len(get_cell(cfg.cell).state) * cfg.num_layers * cfg.hidden_size
    per_row = FLOAT_BYTES * (2 * state + LOGIT_COPIES * vocab_size) + ID_BYTES * length
    return FLOAT_BYTES * parameter_count(cfg, vocab_size) + rows * per_row
