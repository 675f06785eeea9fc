"""End to end through the real command line in fresh processes (``python -m charlm``), on real
text, in a temporary working folder."""

import json

import pytest
from helpers import CONFIGS, charlm

TAGS = {"train/loss", "train/bpc", "loss/val", "bpc/val", "lr", "train/grad_norm",
        "train/chars_per_s"}


@pytest.mark.slow
def test_train_sample_eval_and_tensorboard(tmp_path, corpus_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = charlm("train", "--config", CONFIGS / "tiny.yaml", "--data", corpus_file,
                 "--run-name", "e2e", "--seed", "3", "--max-steps", 60, cwd=tmp_path).stdout
    assert "done: run e2e, 60 steps" in out and "val bpc" in out
    run = tmp_path / "checkpoints" / "e2e"
    assert {"best.pt", "last.pt", "config.yaml"} <= {p.name for p in run.iterdir()}

    text = charlm("sample", "--length", 200, "--seed", 1, cwd=tmp_path).stdout
    assert len(text.rstrip("\n")) >= 200 - text.count("\n")
    again = charlm("sample", "--length", 200, "--seed", 1, cwd=tmp_path).stdout
    assert again == text
    primed = charlm("sample", run, "--prime", "def ", "--length", 20, "--num-samples", 2,
                    cwd=tmp_path).stdout
    assert primed.count("def ") >= 2

    result = json.loads(charlm("eval", run / "best.pt", "--json", cwd=tmp_path).stdout)
    n = len(corpus_file.read_text(encoding="utf-8"))
    assert result["chars"] == int(n * 0.95) - int(n * 0.9) - 1       # the whole val split
    assert 0 < result["bpc"] < 8 and result["perplexity"] > 1

    events = EventAccumulator(str(tmp_path / "runs" / "e2e"), size_guidance={"tensors": 0})
    events.Reload()
    assert TAGS <= set(events.Tags()["scalars"])
    assert "sample/text/text_summary" in events.Tags()["tensors"]
    assert events.Scalars("train/loss")[-1].step == 60
