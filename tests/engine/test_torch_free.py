"""The onnx engine samples with ``import torch`` made impossible."""

import subprocess
import sys

import pytest
from conftest import stdlib_slice
from helpers import TINY, run_ok

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed "
                                          "(pip install 'charlm[onnx]')")

BLOCKED = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
from charlm.cli import main
main(["sample", "--engine", sys.argv[1], sys.argv[2], "--length", "50", "--seed", "1",
      "--num-samples", "2", "--top-k", "5", "--top-p", "0.9", "--prime", "def "])
"""


@pytest.mark.slow
def test_onnx_engine_samples_without_torch(tmp_path):
    (tmp_path / "corpus.txt").write_text(stdlib_slice(20_000), encoding="utf-8")
    run_ok("train", *TINY, "--data", tmp_path / "corpus.txt", "--run-name", "r",
           "--max-steps", 20, cwd=tmp_path)
    run_ok("export", "r", "--output", tmp_path / "out", "--int8", "--no-val", cwd=tmp_path)
    for engine in ("onnx", "onnx-int8"):
        proc = subprocess.run([sys.executable, "-c", BLOCKED, engine, str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("def ") == 2, proc.stdout
