"""The model factory: embedding -> fused recurrent core -> dropout -> linear decoder.

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

import logging
import warnings
from types import MappingProxyType
from typing import Union

import torch
from torch import nn

from charlm.config import ModelConfig

logger = logging.getLogger(__name__)

CELLS = MappingProxyType({"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU})

Hidden = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


def detach_hidden(hidden: Hidden | None) -> Hidden | None:
    """Cut the autograd graph behind a hidden state (TBPTT), for every cell type.

    References:
        Williams & Peng 1990, "An efficient gradient-based algorithm for on-line training of
        recurrent network trajectories" (truncated BPTT).
    """
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


def map_hidden(hidden: Hidden, fn) -> Hidden:
    """Apply ``fn`` to each ``(L, B, H)`` tensor of a hidden state (one, or LSTM's two)."""
    return tuple(fn(h) for h in hidden) if isinstance(hidden, tuple) else fn(hidden)


class CharLM(nn.Module):
    """Character language model: ``Embedding(V, E)`` -> ``CELLS[cell](E, H, L)`` ->
    ``Dropout`` -> ``Linear(H, V)``.

    Args:
        vocab_size: V.
        cell: a key of :data:`CELLS`.
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
        if cell not in CELLS:
            raise ValueError(f"unknown cell '{cell}'; choose one of {', '.join(CELLS)}")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        with warnings.catch_warnings():
            # torch warns on every construction when dropout > 0 and L == 1; the dropout before
            # the decoder still applies, so the warning says nothing useful here.
            warnings.filterwarnings("ignore", message=".*dropout option adds dropout.*")
            self.core = CELLS[cell](embedding_size, hidden_size, num_layers,
                                    dropout=dropout if num_layers > 1 else 0.0,
                                    batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, hidden: Hidden | None = None
                ) -> tuple[torch.Tensor, Hidden]:
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
        return self.decoder(self.dropout(out)), hidden  # (B, T, V)

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


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
