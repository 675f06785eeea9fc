"""Looking inside trained and fresh models: gradient-flow profiles and gate statistics.

Shape legend: B batch, T time steps, L layers, H hidden size.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from charlm.cells import gate_saturation, run_core
from charlm.config import CELL_NAMES, ModelConfig
from charlm.corpora import load_text
from charlm.data import Vocab, split_ids
from charlm.errors import CharLMError
from charlm.gradflow import gradient_profile, sample_windows
from charlm.models import CharLM, create_model

logger = logging.getLogger(__name__)

BURN_IN = 50  # characters that set the hidden state before a gradient-flow window


def fresh_profiles(cells: list[str], spec: str, horizon: int, windows: int, hidden_size: int,
                   num_layers: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Gradient-flow profiles of untrained models, one per cell, on the same text windows.

    Raises:
        CharLMError: for an unknown cell name or unreadable text.
    """
    unknown = [c for c in cells if c not in CELL_NAMES]
    if unknown or not cells:
        raise CharLMError(f"unknown cell(s) {', '.join(unknown) or '(none given)'}; "
                          f"--cell takes a comma-separated list of {', '.join(CELL_NAMES)}")
    text = load_text(spec)
    vocab = Vocab.from_text(text)
    batch = sample_windows(vocab.encode(text), BURN_IN + horizon + 2, windows, seed)
    profiles = {}
    for cell in cells:
        torch.manual_seed(seed)
        model = create_model(ModelConfig(cell=cell, hidden_size=hidden_size,
                                         num_layers=num_layers), vocab.size)
        profiles[cell] = gradient_profile(model, batch, horizon, BURN_IN)
        logger.info("%s: k=0 %.3e, k=%d %.3e", cell, profiles[cell][0], horizon,
                    profiles[cell][-1])
    return profiles


def checkpoint_profiles(paths: list[str], spec: str | None, horizon: int, windows: int,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """Gradient-flow profiles of trained checkpoints, each on its own val split (or ``spec``).

    Raises:
        CheckpointError, DataError: for unreadable checkpoints or text.
    """
    from charlm.checkpoint import find_checkpoint, load_checkpoint
    from charlm.run import load_model

    profiles = {}
    for path in paths:
        path = find_checkpoint(path)
        model, vocab, cfg = load_model(load_checkpoint(path), torch.device("cpu"))
        ids = split_text(vocab, cfg, spec, "val")
        batch = sample_windows(ids, BURN_IN + horizon + 2, windows, seed)
        label = f"{Path(path).parent.name}/{Path(path).stem}"
        profiles[label] = gradient_profile(model, batch, horizon, BURN_IN)
    return profiles


def split_text(vocab, cfg, spec: str | None, split: str,
               encoding: str | None = None) -> np.ndarray:
    """Ids of one split of ``spec`` (default: the run's own corpus) in ``vocab``, cut with the
    run's split fractions; ``encoding`` overrides the run's ``data.encoding``. The ids come
    from the encoded-corpus cache (:mod:`charlm.corpus_cache`), as a memory map.

    Raises:
        DataError: for unreadable text or characters outside ``vocab``.
    """
    from charlm.corpus_cache import encode_corpus

    d = cfg.data
    corpus = encode_corpus(spec or d.corpus, d.data_dir, d.cache_dir, d.unit,
                           encoding or d.encoding, d.errors, vocab, progress=False)
    return split_ids(corpus.ids, d.train_frac, d.val_frac)[split]


@torch.no_grad()
def gate_statistics(model: CharLM, ids: np.ndarray, batch: int = 8, length: int = 256,
                    seed: int = 0) -> dict[int, dict[str, tuple[float, float]]]:
    """Fraction of left- (< 0.1) and right-saturated (> 0.9) activations of each sigmoid gate.

    Runs the reference cells (:mod:`charlm.cells`) over ``batch`` windows of ``length``
    characters of real text.

    Returns:
        ``{layer: {gate: (left_fraction, right_fraction)}}``; empty for the vanilla RNN.
    References:
        Karpathy, Johnson & Fei-Fei 2015, "Visualizing and understanding recurrent networks".
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = sample_windows(ids, min(length, len(ids) - 1), batch, seed).to(device)
    try:
        _, _, gates = run_core(model.core, model.embedding(x), record_gates=True)
    finally:
        model.train(was_training)
    return gate_saturation(gates)


def format_gates(stats: dict[int, dict[str, tuple[float, float]]]) -> str:
    """One line per layer and gate: left- and right-saturated percentages."""
    if not stats or not any(stats.values()):
        return "no sigmoid gates (vanilla RNN)"
    lines = ["layer gate  left<0.1  right>0.9"]
    for layer, gates in stats.items():
        for gate, (left, right) in gates.items():
            lines.append(f"{layer:5d} {gate:>4}  {100 * left:7.1f}%  {100 * right:8.1f}%")
    return "\n".join(lines)
