"""The model: embedding -> recurrent core (from the cell table) -> dropout -> linear decoder.

Shape legend: B batch, T time steps, V vocab size, E embedding size, H hidden size, L layers.
Inputs are batch-first ``(B, T)``; hidden state is ``(L, B, H)``, or an ``(h, c)`` pair of
them for the LSTM.

References:
    Elman 1990, "Finding structure in time" (RNN). Hochreiter & Schmidhuber 1997, "Long
    short-term memory"; Gers et al. 2000, "Learning to forget" (LSTM forget gate). Cho et al.
    2014, "Learning phrase representations using RNN encoder-decoder" (GRU). Zaremba et al.
    2014, "Recurrent neural network regularization" (dropout between layers only).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import Iterator

from torch import Tensor, nn

from charlm.config import ModelConfig
from charlm.config.cells import CellSpec, get_cell
from charlm.models.state import Hidden

logger = logging.getLogger(__name__)

READ_CHUNK = 2048
"""Characters per pass when :meth:`CharLM.read` reads a long text."""


def core_class(spec: CellSpec) -> type[nn.Module]:
    """The module class a cell table entry names (``module:Class``)."""
    module, _, name = spec.core.partition(":")
    return getattr(importlib.import_module(module), name)


class CharLM(nn.Module):
    """Character language model: ``Embedding(V, E)`` -> core ``(E, H, L)`` -> ``Dropout`` ->
    ``Linear(H, V)``.

    The model owns its three forwards: :meth:`forward` over a chunk (training, evaluation),
    :meth:`step` over one character (sampling, gradient flow) and :meth:`trace`, which
    records every gate (gate statistics, unit visualisation).

    Args:
        vocab_size: V.
        cell: a name in :data:`charlm.cell_table.CELLS`.
        embedding_size: E.
        hidden_size: H.
        num_layers: L.
        dropout: probability between recurrent layers (only when L > 1) and before the decoder.
    Raises:
        ValueError: for an unknown cell, listing the valid ones.
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", embedding_size: int = 64,
                 hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.spec = get_cell(cell)
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.core = core_class(self.spec)(embedding_size, hidden_size, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: Tensor, hidden: Hidden | None = None) -> tuple[Tensor, Hidden]:
        """Next-character scores for every position.

        Args:
            ids: (B, T) int64 character ids.
            hidden: state from the previous chunk, ``(L, B, H)`` (LSTM: a pair), or None for
                zeros.
        Returns:
            ``(logits, hidden)``: (B, T, V) unnormalised scores and the state after step T.
        """
        x = self.embedding(ids)                 # (B, T, E)
        out, hidden = self.core(x, hidden)      # (B, T, H)
        return self.readout(out), hidden        # (B, T, V)

    def step(self, ids: Tensor, hidden: Hidden | None = None) -> tuple[Tensor, Hidden]:
        """Next-character scores after one more character per row: O(1) work, the prefix
        never re-run.

        Args:
            ids: (B,) int64 ids of the newest character of each row.
            hidden: the state after the previous character, or None for zeros.
        Returns:
            ``(logits, hidden)``: (B, V) scores and the new state.
        """
        x = self.embedding(ids.unsqueeze(1))[:, 0]            # (B, E)
        out, hidden = self.core.step(x, hidden)               # (B, H)
        return self.readout(out), hidden                       # (B, V)

    def read(self, ids: Tensor, hidden: Hidden | None = None, chunk: int = READ_CHUNK
             ) -> tuple[Tensor, Hidden]:
        """Read a text of any length and keep only what comes next: the scores after its
        last character and the state.

        The text runs through the core ``chunk`` characters at a time, the state carried,
        and only the last position is decoded, so memory is bounded by ``chunk`` whatever
        T is (a 10 MB prime costs what a 2 KB one does, per row).

        Args:
            ids: (B, T) int64 ids, T >= 1.
            hidden: the state to read from, or None for zeros.
            chunk: characters per pass through the core (memory, not the result).
        Returns:
            ``(logits, hidden)``: (B, V) scores after ``ids[:, -1]`` and the state after it.
        """
        out = None
        for i in range(0, ids.shape[1], chunk):
            out, hidden = self.core(self.embedding(ids[:, i:i + chunk]), hidden)  # (B, T', H)
        return self.readout(out[:, -1]), hidden                               # (B, V)

    def trace(self, ids: Tensor, hidden: Hidden | None = None
              ) -> tuple[Tensor, Hidden, dict[int, dict[str, Tensor]]]:
        """:meth:`forward` with every layer's gates and states recorded.

        Returns:
            ``(logits, hidden, record)``: as :meth:`forward`, plus ``{layer: {name: (B, T, H)}}``
            holding the cell's gates (its table entry's ``gates``), the output ``h`` and, for
            the LSTM, the cell state ``c``.
        """
        out, hidden, record = self.core.trace(self.embedding(ids), hidden)
        return self.readout(out), hidden, record

    def readout(self, out: Tensor) -> Tensor:
        """Scores from the top layer's output: (..., H) -> (..., V), dropout first."""
        return self.decoder(self.dropout(out))

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode (no dropout) for the block, then restore its mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def create_model(cfg: ModelConfig, vocab_size: int) -> CharLM:
    """Build the model a :class:`ModelConfig` describes.

    Raises:
        ValueError: for an unknown cell.
    """
    if cfg.dropout > 0 and cfg.num_layers == 1:
        logger.info("model.dropout=%g with num_layers=1 applies only before the decoder "
                    "(there are no layers to put it between)", cfg.dropout)
    return CharLM(vocab_size, cfg.cell, cfg.embedding_size, cfg.hidden_size,
                  cfg.num_layers, cfg.dropout)

