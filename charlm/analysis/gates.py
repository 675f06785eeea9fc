"""Gate saturation: how often each sigmoid gate sits near 0 or near 1 on real text.

Shape legend: B batch, T time steps, L layers, H hidden size.

References:
    Karpathy, Johnson & Fei-Fei 2015, "Visualizing and understanding recurrent networks",
    section 4.2 (gate saturation statistics).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from charlm.analysis.gradflow import sample_windows
from charlm.models.lm import CharLM, eval_mode

logger = logging.getLogger(__name__)


def gate_saturation(gates: dict[int, dict[str, Tensor]], sigmoid_gates=("i", "f", "o", "r", "z"),
                    low: float = 0.1, high: float = 0.9
                    ) -> dict[int, dict[str, tuple[float, float]]]:
    """Fraction of sigmoid-gate activations that sit near 0 or near 1.

    Args:
        gates: ``{layer: {name: (B, T, H)}}`` as :meth:`CharLM.trace` records them.
        sigmoid_gates: the names to count (a cell table entry's ``sigmoid_gates``); tanh
            quantities (g, n, c, h) are unbounded or in (-1, 1), so "saturated below 0.1"
            means nothing for them and they are skipped.
        low: an activation below it is left-saturated.
        high: an activation above it is right-saturated.
    Returns:
        ``{layer: {gate: (left_fraction, right_fraction)}}``, each in [0, 1], pooled over batch,
        time and units.
    Raises:
        ValueError: unless 0 <= low <= high <= 1.
    References:
        Karpathy, Johnson & Fei-Fei 2015, section 4.2 (thresholds 0.1 and 0.9; they plot the
        fractions per unit, these pool all units of a gate).
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    return {layer: {name: ((a < low).double().mean().item(), (a > high).double().mean().item())
                    for name, a in named.items() if name in sigmoid_gates}
            for layer, named in gates.items()}


@torch.no_grad()
def gate_statistics(model: CharLM, ids: np.ndarray, batch: int = 8, length: int = 256,
                    seed: int = 0) -> dict[int, dict[str, tuple[float, float]]]:
    """Fraction of left- (< 0.1) and right-saturated (> 0.9) activations of each sigmoid gate.

    Runs the model's traced forward over ``batch`` windows of ``length`` characters of real
    text.

    Returns:
        ``{layer: {gate: (left_fraction, right_fraction)}}``; empty for cores without sigmoid
        gates (rnn, indrnn).
    References:
        Karpathy, Johnson & Fei-Fei 2015, "Visualizing and understanding recurrent networks".
    """
    device = next(model.parameters()).device
    x = sample_windows(ids, min(length, len(ids) - 1), batch, seed).to(device)
    with eval_mode(model):
        _, _, gates = model.trace(x)
    return gate_saturation(gates, model.spec.sigmoid_gates)


def format_gates(stats: dict[int, dict[str, tuple[float, float]]]) -> str:
    """One line per layer and gate: left- and right-saturated percentages."""
    if not stats or not any(stats.values()):
        return "no sigmoid gates in this core (rnn and indrnn have none)"
    lines = ["layer gate  left<0.1  right>0.9"]
    for layer, gates in stats.items():
        for gate, (left, right) in gates.items():
            lines.append(f"{layer:5d} {gate:>4}  {100 * left:7.1f}%  {100 * right:8.1f}%")
    return "\n".join(lines)
