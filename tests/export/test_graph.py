"""The exported one-step graph of every core against torch: the zero start state, logits
within 1e-5 over 200 carried steps of a trained checkpoint, and 300 characters of greedy
text from ``charlm sample --engine onnx`` equal to the torch engine's."""

import numpy as np
import pytest
import torch
from conftest import stdlib_slice
from helpers import TINY, run_ok

from charlm.config.cells import CELLS
from charlm.models.lm import CharLM

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed "
                                          "(pip install 'charlm[onnx]')")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")


@pytest.mark.parametrize("cell", list(CELLS))
def test_zero_state_is_the_same_as_no_state(cell):
    from charlm.export.graph import zero_state

    torch.manual_seed(0)
    model = CharLM(20, cell, 8, 12, 2).eval()
    ids = torch.tensor([3, 7])
    zeros = tuple(torch.from_numpy(s) for s in zero_state(model, 2))
    with torch.no_grad():
        none, _ = model.step(ids, None)
        given, _ = model.step(ids, zeros if len(zeros) > 1 else zeros[0])
    assert torch.equal(none, given)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("export")
    (work / "corpus.txt").write_text(stdlib_slice(40_000), encoding="utf-8")
    return work


def exported(work, cell):
    """A 2 x 32 run of ``cell`` trained 300 steps, and its export folder (made once)."""
    folder = work / f"{cell}-export"
    if not folder.exists():
        run_ok("train", *TINY, "--data", work / "corpus.txt", "--cell", cell, "--run-name", cell,
               "--max-steps", 300, "--set", "model.num_layers=2", cwd=work)
        run_ok("export", cell, "--output", folder, "--no-val", cwd=work)
    return work / "checkpoints" / cell, folder


# trains and exports six models (a minute or two on one core): with the slow tests
@pytest.mark.slow
@pytest.mark.parametrize("cell", list(CELLS))
def test_onnx_logits_equal_torch_over_200_carried_steps(work, cell):
    from charlm.engine.model import OnnxModel
    from charlm.store.names import open_checkpoint
    from charlm.store.restore import restore_model

    run, folder = exported(work, cell)
    _, ckpt = open_checkpoint(run)
    model, vocab, _ = restore_model(ckpt)
    onnx = OnnxModel(folder)
    ids = vocab.encode(stdlib_slice(40_000)[-201:]).astype(np.int64)
    hidden, state, worst = None, onnx.zero_state(1), 0.0
    with torch.no_grad():
        for t in range(200):
            want, hidden = model.step(torch.from_numpy(ids[t:t + 1]), hidden)
            got, state = onnx.step(ids[t:t + 1], state)
            worst = max(worst, float(np.abs(got - want.numpy()).max()))
    assert worst <= 1e-5, f"{cell}: logits differ by {worst:.2e}"


@pytest.mark.slow
@pytest.mark.parametrize("cell", list(CELLS))
def test_onnx_greedy_text_equals_the_torch_engine(work, cell):
    run, folder = exported(work, cell)
    args = ["--temperature", 0, "--length", 300, "--prime", "def "]
    torch_text = run_ok("sample", run, *args, cwd=work).stdout
    onnx_text = run_ok("sample", "--engine", "onnx", folder, *args, cwd=work).stdout
    assert onnx_text == torch_text and len(torch_text) >= 300
