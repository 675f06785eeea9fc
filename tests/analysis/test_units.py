"""Interpretable units: text properties and the units whose activations follow them."""

import numpy as np
import pytest

from charlm.analysis.units import UnitMatch, best_units, parse_unit, text_features


def test_text_features_and_best_units():
    text = 'x = f("a b")\n    if (y):\n'
    feats = text_features(text)
    assert feats["position in line"][:3].tolist() == [1, 2, 3]
    assert feats["inside quotes"][text.index("a")] == 1 and feats["inside quotes"][0] == 0
    assert feats["inside brackets"][text.index("y")] == 1
    assert feats["indentation"][text.index("i")] == 4
    rng = np.random.default_rng(0)
    acts = {"c0": rng.normal(size=(len(text), 6))}
    acts["c0"][:, 4] = feats["indentation"] + 0.01 * rng.normal(size=len(text))
    found = [m for m in best_units(acts, feats, top=1) if m.feature == "indentation"]
    assert found[0].unit == "c0:4" and found[0].r > 0.99
    assert parse_unit("0:4", acts) == "c0:4"
    with pytest.raises(Exception, match="does not exist"):
        parse_unit("3:1", acts)
    with pytest.raises(Exception, match="must look like LAYER:INDEX"):
        parse_unit("oops", acts)
    assert isinstance(found[0], UnitMatch)
