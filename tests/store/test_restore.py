"""Rebuilding a model from a checkpoint: every check before any memory is spent."""

import re
from pathlib import Path

import pytest
import torch
from helpers import TRAIN, one_line_error, run_cli

from charlm.errors import CheckpointError
from charlm.store.restore import check_checkpoint


def poisoned(run: Path, into: Path) -> Path:
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["model"]["core.weight_hh_l0"][0, 0] = float("nan")
    into.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, into / "best.pt")
    return into / "best.pt"


@pytest.mark.parametrize("command", [["sample"], ["sample", "--temperature", "0"], ["eval"],
                                     ["inspect", "--gates"], ["visualize"], ["gradflow"],
                                     ["train", "--init-from"]])
def test_non_finite_weights_are_refused_naming_the_tensor(trained, tmp_path, command):
    work, _, run = trained
    bad = poisoned(run, tmp_path / "nan")
    args = [*command, bad] if command[0] != "train" else [*TRAIN, "--init-from", bad]
    one_line_error(run_cli(*args, cwd=work), "non-finite weights", "core.weight_hh_l0")


def test_a_config_that_contradicts_its_weights_is_refused_before_the_model_is_built(trained):
    _, _, run = trained
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["config"]["model"]["hidden_size"] = 60_000   # 58 GB of LSTM weights if it were built
    with pytest.raises(CheckpointError, match="has misshapen core.weight_ih_l0"):
        check_checkpoint(ckpt, "big.pt")


@pytest.mark.parametrize("entry, value, message", [
    ("model", [1, 2], "its model entry holds a list of 2 items, where charlm writes a mapping "
                      "of parameter names to tensors"),
    ("config", ["model"], "its config entry holds a list of 1 item"),
    ("vocab", "abc", "its vocab entry holds 3 characters but its model entry's embedding has"),
])
def test_entries_of_the_wrong_type_are_refused_in_one_line(trained, entry, value, message):
    _, _, run = trained
    ckpt = torch.load(run / "best.pt", weights_only=True) | {entry: value}
    with pytest.raises(CheckpointError, match=re.escape(message)):
        check_checkpoint(ckpt, "odd.pt")
