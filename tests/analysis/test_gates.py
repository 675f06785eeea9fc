"""Gate saturation: the fractions of a sigmoid gate's values near 0 and near 1."""

import pytest
import torch

from charlm.analysis.gates import gate_saturation


def test_gate_saturation_counts_and_skips_tanh_quantities():
    gates = {0: {"f": torch.tensor([0.05, 0.5, 0.95, 0.99]), "g": torch.tensor([-1.0, 1.0])}}
    assert gate_saturation(gates) == {0: {"f": (0.25, 0.5)}}
    with pytest.raises(ValueError, match="low <= high"):
        gate_saturation(gates, low=0.9, high=0.1)
