"""Allocation failures become one line naming the sizes (issue 22, kind 1)."""

import pytest
import torch
from helpers import TINY, one_line_error, run_cli

from charlm.errors import ResourceError
from charlm.system.memory import allocation_guard, is_out_of_memory


@pytest.mark.parametrize("exc", [
    MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                                "allocate 640000000000 bytes"),
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")])
def test_allocation_failures_on_any_device_become_resource_errors(exc):
    assert is_out_of_memory(exc)
    with pytest.raises(ResourceError, match=r"out of memory while x \(batch_size 9\); lower"):
        with allocation_guard("x", "batch_size 9", "lower --batch-size"):
            raise exc


def test_other_runtime_errors_pass_unchanged():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with allocation_guard("x", "y", "z"):
            raise RuntimeError("shape mismatch")


def test_cuda_out_of_memory_in_training_is_one_line(tmp_path, corpus_file, monkeypatch):
    import charlm.training.run as run

    def fail(*args, **kwargs):  # injected: the CPU cannot raise CUDA's error for real
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(run, "create_model", fail)
    one_line_error(run_cli("train", *TINY, "--data", corpus_file, "--max-steps", 1,
                           cwd=tmp_path),
                   "out of memory while training", "batch_size", "seq_len", "hidden_size",
                   "--batch-size")
