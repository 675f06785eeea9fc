"""End to end through the real command line, on real text, in a temporary working folder."""

import json

import pytest
from helpers import CONFIGS, charlm

TAGS = {"train/loss", "train/bpc", "val/loss", "val/bpc", "train/lr", "train/grad_norm",
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


def test_bad_input_is_one_line_without_traceback(tmp_path):
    proc = charlm("train", "--set", "model.hiden_size=3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "did you mean 'model.hidden_size'" in proc.stderr
    proc = charlm("train", "--data", tmp_path / "missing.txt", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "no such file or directory" in proc.stderr
    proc = charlm("sample", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "no runs with checkpoints" in proc.stderr


def test_existing_run_is_never_overwritten(tmp_path, corpus_file):
    run = tmp_path / "checkpoints" / "keep"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"precious")
    proc = charlm("train", "--config", CONFIGS / "tiny.yaml", "--data", corpus_file,
                  "--run-name", "keep", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "already has checkpoints" in proc.stderr
    assert (run / "best.pt").read_bytes() == b"precious"


def test_help_lists_every_option_with_default(tmp_path):
    out = charlm("train", "--help", cwd=tmp_path).stdout
    for option in ("--cell", "--data", "--max-time", "--hidden-size", "--grad-clip", "--set",
                   "--checkpoint-dir", "--log-dir", "--seed", "--device"):
        assert option in out
    assert "[default: lstm, config model.cell]" in " ".join(out.split())


def test_stop_at_an_evaluation_step_is_a_pause(tmp_path, corpus_file):
    args = ["--config", CONFIGS / "tiny.yaml", "--data", corpus_file, "--no-progress", "--seed",
            1, "--max-steps", 40, "--max-time", 10000, "--run-name", "p"]
    out = charlm("train", *args, "--stop-at-step", 20, cwd=tmp_path).stdout  # eval_interval 20
    assert "paused: run p at step 20" in out
    assert "done: run p, 40 steps" in charlm("train", "--resume", "p", cwd=tmp_path).stdout
