"""Gradient flow through time, gate statistics and the interpretable-units page."""

import csv

import numpy as np
import pytest
import torch
from helpers import CONFIGS, charlm, scalars

from charlm.config import ModelConfig
from charlm.data import Vocab
from charlm.analysis.gradflow import gradient_profile, sample_windows
from charlm.models import create_model
from charlm.analysis.units import UnitMatch, best_units, parse_unit, text_features


@pytest.fixture(scope="module")
def real_windows(stdlib_text):
    vocab = Vocab.from_text(stdlib_text)
    return vocab, sample_windows(vocab.encode(stdlib_text), 50 + 100 + 2, 16, seed=0)


def profile(cell, vocab, windows, horizon=100):
    torch.manual_seed(0)
    model = create_model(ModelConfig(cell=cell, hidden_size=128, num_layers=2), vocab.size)
    return gradient_profile(model, windows, horizon)


def test_vanilla_rnn_gradient_vanishes_orders_of_magnitude_faster(real_windows):
    vocab, windows = real_windows
    rnn, lstm, gru = (profile(c, vocab, windows) for c in ("rnn", "lstm", "gru"))
    assert all(len(p) == 101 and (p > 0).all() for p in (rnn, lstm, gru))
    assert lstm[100] > 1e3 * rnn[100] and gru[100] > 1e3 * rnn[100]
    assert rnn[0] > rnn[10] > rnn[50] > rnn[100]   # geometric decay through time


def test_profile_leaves_parameter_grads_alone(real_windows):
    vocab, windows = real_windows
    model = create_model(ModelConfig(cell="gru", hidden_size=16, num_layers=1), vocab.size)
    gradient_profile(model.train(), windows, 10)
    assert all(p.grad is None for p in model.parameters()) and model.training


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


@pytest.mark.slow
def test_gradflow_visualize_and_training_logs(tmp_path, corpus_file):
    out = charlm("gradflow", "--cell", "rnn,lstm", "--data", corpus_file, "--horizon", 30,
                 "--windows", 4, "--hidden-size", 32, "--out", tmp_path / "gf", cwd=tmp_path)
    assert "rnn" in out.stdout and "wrote" in out.stdout
    rows = list(csv.reader((tmp_path / "gf" / "gradflow.csv").open()))
    assert rows[0] == ["k", "rnn", "lstm"] and len(rows) == 32
    assert (tmp_path / "gf" / "gradflow.png").read_bytes()[:4] == b"\x89PNG"
    assert [s for s, _ in scalars(tmp_path / "gf" / "lstm", "gradflow/grad_norm")] == \
        list(range(31))

    charlm("train", "--config", CONFIGS / "tiny.yaml", "--data", corpus_file, "--run-name", "g",
           "--max-steps", 20, "--set", "train.log_gradflow_interval=10", "--set",
           "train.gradflow_horizon=20", cwd=tmp_path)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "runs" / "g"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"grad/flow_k000", "grad/flow_k020", "grad/clipped_frac",
            "gates/layer0_f_left"} <= tags
    assert "grad/norm_preclip" in events.Tags()["histograms"]

    run = tmp_path / "checkpoints" / "g" / "best.pt"
    gates = charlm("inspect", run, "--gates", cwd=tmp_path).stdout
    assert "gate saturation" in gates and " f " in gates
    page = tmp_path / "v.html"
    shown = charlm("visualize", run, "--out", page, "--length", 300, cwd=tmp_path).stdout
    assert "position in line" in shown and "wrote" in shown
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.count("<span") >= 300
    bad = charlm("visualize", run, "--unit", "9:9", "--out", page, cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "does not exist" in bad.stderr
