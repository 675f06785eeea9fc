"""The Python API: ``charlm.load`` of a run folder, a .pt file and an export folder;
generate, stream and score; ``charlm.train``; and examples/generate.py as written."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import stdlib_slice
from helpers import run_ok

import charlm

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "generate.py"


def test_load_generate_stream_and_score_a_run(trained):
    _, corpus, run = trained
    m = charlm.load(run)
    text = m.generate("def ", length=40, temperature=0)
    assert len(text) == 40 and text == "".join(m.stream("def ", length=40, temperature=0))
    assert m.generate("def ", length=30, seed=3) == m.generate("def ", length=30, seed=3)
    assert m.generate("def ", length=200, temperature=0, stop=" ").count(" ") <= 1
    scored = m.score(corpus.read_text(encoding="utf-8")[:500])
    assert scored["chars"] == 499 and scored["bpc"] == pytest.approx(scored["loss_nats"] / 0.6931471805599453)
    assert charlm.load(run / "best.pt").generate("def ", length=40, temperature=0) == text


def test_an_export_folder_generates_and_scores_as_its_checkpoint(trained):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    work, corpus, run = trained
    folder = work / "api-export"
    run_ok("export", run, "--output", folder, "--no-val", cwd=work)
    torch_model, onnx_model = charlm.load(run), charlm.load(folder)
    assert onnx_model.engine == "onnx"
    greedy = dict(length=60, temperature=0)
    assert onnx_model.generate("def ", **greedy) == torch_model.generate("def ", **greedy)
    text = corpus.read_text(encoding="utf-8")[:400]
    assert onnx_model.score(text)["loss_nats"] == pytest.approx(
        torch_model.score(text)["loss_nats"], abs=1e-4)


@pytest.mark.slow
def test_the_example_runs_as_written(tmp_path):
    (tmp_path / "corpus.txt").write_text(stdlib_slice(20_000), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(EXAMPLE), "corpus.txt", "3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "'bpc':" in proc.stdout
