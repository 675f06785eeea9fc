"""``charlm export`` on bad input: one ``Error:`` line naming the option to fix it, nothing
written over."""

import importlib.util

import pytest
import torch
from helpers import one_line_error, run_cli, run_ok

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed "
                                          "(pip install 'charlm[onnx]')")


def test_export_of_a_missing_run_names_the_run(trained):
    work, _, _ = trained
    one_line_error(run_cli("export", "no-such-run", "--output", work / "x", cwd=work),
                   "no checkpoint at no-such-run")


def test_export_refuses_a_folder_that_is_not_empty(trained):
    work, _, run = trained
    (work / "full").mkdir()
    (work / "full" / "keep.txt").write_text("mine")
    one_line_error(run_cli("export", run, "--output", work / "full", cwd=work),
                   "--output", "exists and is not empty")
    assert (work / "full" / "keep.txt").read_text() == "mine"


def test_export_of_an_unknown_core_from_a_future_version(trained):
    work, _, run = trained
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["config"]["model"]["cell"] = "hyperlstm"
    torch.save(ckpt, work / "future.pt")
    one_line_error(run_cli("export", work / "future.pt", "--output", work / "y", cwd=work),
                   "'hyperlstm' core", "upgrade charlm, or name another CHECKPOINT")
    assert not (work / "y").exists()


def test_export_without_the_onnx_extra_says_what_to_install(trained, monkeypatch):
    work, _, run = trained
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real(name, *a))
    one_line_error(run_cli("export", run, "--output", work / "z", cwd=work),
                   "pip install 'charlm[onnx]'")


def test_export_writes_the_folder_contract_and_int8(trained):
    import json

    work, _, run = trained
    run_ok("export", run, "--output", work / "out", "--int8", cwd=work)
    config = json.loads((work / "out" / "config.json").read_text())
    assert {p.name for p in (work / "out").iterdir()} == {
        "model.onnx", "model.int8.onnx", "vocab.json", "config.json", "model.safetensors",
        "README.md"}
    assert config["format"] == "charlm-export" and config["state"] == ["h", "c"]
    assert abs(config["val_bpc_int8"] - config["val_bpc"]) < 0.1
    vocab = json.loads((work / "out" / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["unit"] == "char" and len(vocab["tokens"]) == config["vocab_size"]


def test_onnx_engine_refuses_beam_search(trained):
    work, _, _ = trained
    one_line_error(run_cli("sample", "--engine", "onnx", work / "out", "--beam-width", 2,
                           cwd=work), "--beam-width", "torch engine")
