"""Every top-level entry of a checkpoint, holding a value of the wrong type, is refused in one
line by every command that reads it, naming the entry, and nothing on disk changes."""

import copy
import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TRAIN, one_line_error, run_cli

from charlm.errors import CheckpointError
from charlm.store.checkpoint import load_checkpoint

WRONG = {"None": None, "a list": [1, 2], "a str": "not charlm", "a dict": {"x": 1},
         "a float": 0.5, "a huge int": 10**30, "a bool": True, "a tensor": torch.zeros(3)}
NAMES = ["format_version", "versions", "config", "vocab", "model", "optimizer", "state", "hidden",
         "rng", "rng_ranks", "corpus"]  # every entry make_payload writes
RESUME_ONLY = {"optimizer", "rng", "hidden", "rng_ranks", "corpus"}  # nothing else reads them
EXPORTS = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript",
                                                     "safetensors"))


def commands(folder: Path, corpus: Path) -> dict[str, list]:
    """Each command that reads a checkpoint, given the damaged one in ``folder`` (fine-tuning
    on the run's ``corpus``)."""
    ckpt = folder / "last.pt"
    found = {"sample": ["sample", ckpt, "--length", 5], "eval": ["eval", ckpt],
             "inspect": ["inspect", ckpt], "train --resume": ["train", "--resume", folder],
             "train --init-from": [*TRAIN, "--init-from", ckpt, "--data", corpus]}
    if EXPORTS:
        found["export"] = ["export", ckpt, "-o", folder.parent / "exported", "--no-val"]
    return found


def accepted(entry: str, kind: str, command: str) -> bool:
    """Values of the right type for a use: what only a resume reads may hold anything for
    the others; an optional entry may be None; a state that does not say its step is still
    readable (inspect shows what it says; only a resume needs every counter)."""
    resumes = command == "train --resume"
    return (entry in RESUME_ONLY and not resumes) or (
        kind == "None" and entry in ("hidden", "rng_ranks", "corpus")) or (
        entry == "state" and kind == "a dict" and not resumes)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def original(trained):
    """The tiny run's last.pt, as loaded."""
    return torch.load(trained[2] / "last.pt", weights_only=True)


def test_the_table_names_every_entry_charlm_writes(original):
    from charlm.store.entries import ENTRIES

    assert [e.name for e in ENTRIES] == NAMES == list(original)


@pytest.mark.parametrize("entry", NAMES)
@pytest.mark.parametrize("kind", list(WRONG))
def test_an_entry_of_the_wrong_type_is_one_line_naming_it_for_every_command(
        trained, original, tmp_path, entry, kind):
    work = trained[0]
    folder = tmp_path / "hurt"
    folder.mkdir()
    torch.save({**original, entry: WRONG[kind]}, folder / "last.pt")
    (folder / "config.yaml").write_text("precious\n")
    before = snapshot(folder)
    for name, args in commands(folder, trained[1]).items():
        if accepted(entry, kind, name):
            if name in ("inspect", "sample"):  # the commands that do not train or write
                assert run_cli(*args, cwd=work).returncode == 0, name
            continue
        result = run_cli(*args, cwd=work)
        line = one_line_error(result, str(folder / "last.pt"))
        assert re.search(rf"\b{entry}\b", line), (name, line)
        assert snapshot(folder) == before, name
    assert snapshot(folder) == before


def test_a_checkpoint_without_what_only_a_resume_reads_still_samples(trained, original,
                                                                       tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    torch.save({k: v for k, v in original.items() if k not in RESUME_ONLY}, folder / "last.pt")
    assert run_cli("sample", folder / "last.pt", "--length", 5, cwd=trained[0]).returncode == 0
    one_line_error(run_cli("train", "--resume", folder, cwd=trained[0]), "lacks optimizer, rng")


@pytest.mark.parametrize("field", ["step", "epoch", "chunk", "elapsed_s", "best_val_loss",
                                   "last_val_loss", "last_eval_step", "nonfinite_steps",
                                   "best_step", "evals_since_best"])
@pytest.mark.parametrize("value", ["12", None, [1], 10**400, torch.tensor(3)],
                         ids=["a str", "None", "a list", "a huge int", "a tensor"])
def test_a_counter_of_the_wrong_type_is_refused_for_every_use(original, tmp_path, field, value):
    """inspect formats every counter (a str elapsed_s was a ValueError, a huge loss an
    OverflowError), so the state's fields are checked for every use, not only a resume."""
    torch.save(original | {"state": original["state"] | {field: value}}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=rf"its state entry holds a dict whose '{field}'"):
        load_checkpoint(tmp_path / "last.pt")


@pytest.mark.parametrize("damage, words", [
    (lambda opt: opt["param_groups"][0]["params"].pop(), "does not fit this model"),
    (lambda opt: opt["state"][0].update(exp_avg=torch.zeros(3, 3)),
     "its exp_avg is (3, 3) for a parameter of"),
])
def test_an_optimizer_entry_that_does_not_fit_the_model_is_one_line(trained, original,
                                                                     tmp_path, damage, words):
    """Of the right type but the wrong size: torch raised a ValueError traceback, or took the
    moment and failed at the first step."""
    work, _, _ = trained
    folder = tmp_path / "checkpoints" / "hurt"
    shutil.copytree(trained[2], folder)
    ckpt = copy.deepcopy(original)
    damage(ckpt["optimizer"])
    torch.save(ckpt, folder / "last.pt")
    before = snapshot(folder)
    one_line_error(run_cli("train", "--resume", folder, cwd=work), words, "--init-from")
    assert snapshot(folder) == before
