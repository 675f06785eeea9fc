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


def test_available_memory_is_known_on_a_linux_cpu():
    import sys

    from charlm.system.memory import available_bytes
    if sys.platform.startswith("linux"):
        assert available_bytes("cpu") > 0
    assert available_bytes("meta") is None


def test_an_estimate_above_available_memory_is_refused_naming_bytes(monkeypatch):
    import charlm.system.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**9)
    memory.check_fits(10**9, "x", "cpu", "lower --y")
    with pytest.raises(ResourceError, match=r"x needs about 2.0 GB \(2,000,000,000 bytes\) on "
                                            r"cpu, more than the 1.0 GB available; lower --y"):
        memory.check_fits(2 * 10**9, "x", "cpu", "lower --y")


def test_training_too_large_for_memory_is_refused_before_its_folder_exists(tmp_path,
                                                                           corpus_file):
    # 60000 hidden units: within the schema's maximum, about 700 GB to train; nothing is built
    line = one_line_error(run_cli("train", *TINY, "--data", corpus_file, "--max-steps", 1,
                                  "--hidden-size", 60_000, "--run-name", "huge", cwd=tmp_path),
                          "needs about", "bytes", "--hidden-size", "--batch-size", "--seq-len")
    assert "GB" in line or "TB" in line
    assert not (tmp_path / "checkpoints" / "huge").exists()
    assert not (tmp_path / "runs" / "huge").exists()


def test_a_run_out_of_memory_before_its_first_checkpoint_leaves_no_folder(tmp_path,
                                                                         corpus_file,
                                                                         monkeypatch):
    import charlm.training.run as run

    def fail(*args, **kwargs):  # after config.yaml is written, as a real first step's OOM
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                           "640000000000 bytes")
    monkeypatch.setattr(run, "fit", fail)
    one_line_error(run_cli("train", *TINY, "--data", corpus_file, "--max-steps", 1,
                           "--run-name", "oom", cwd=tmp_path), "out of memory while training")
    assert not (tmp_path / "checkpoints" / "oom").exists()
    assert not list((tmp_path / "runs").glob("oom/events.*"))


@pytest.mark.parametrize("args, option", [
    (["--num-samples", 1000, "--length", 10_000], "--num-samples"),
    (["--beam-width", 50, "--length", 100_000], "--beam-width")])
def test_sampling_buffers_above_memory_are_refused(trained, monkeypatch, args, option):
    import charlm.system.memory as memory

    work, _, run = trained
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 10**6)
    one_line_error(run_cli("sample", run, *args, cwd=work), "sampling", "needs about",
                   "bytes", option, "--length")


@pytest.mark.parametrize("option, value", [("--num-samples", 10**9), ("--beam-width", 10**7),
                                           ("--length", 10**12)])
def test_sampling_sizes_that_can_only_be_a_mistake_are_refused(trained, option, value):
    work, _, run = trained
    one_line_error(run_cli("sample", run, option, value, cwd=work), option)


@pytest.mark.parametrize("command, target, words", [
    (["eval"], "evaluate", ["out of memory while evaluating", "batch_size", "--batch-size"]),
    (["eval", "--dynamic"], "charlm.evaluation.dynamic.dynamic_evaluate",
     ["out of memory while evaluating dynamically", "--dynamic-seq-len"]),
    (["score", "--text", "corpus.txt"], "charlm.evaluation.static.surprisals",
     ["out of memory while scoring", "hidden_size", "--text"]),
    (["sample", "--num-samples", 2], "charlm.generation.sampling.generate",
     ["out of memory while sampling", "num_samples 2", "--num-samples"]),
    (["sample", "--beam-width", 2], "charlm.generation.beam.beam_search",
     ["out of memory while sampling", "beam_width 2", "--beam-width"])])
def test_allocation_failures_in_inference_are_one_line(trained, monkeypatch, command, target,
                                                      words):
    work, _, run = trained

    def fail(*args, **kwargs):  # injected: CUDA's error cannot happen on a CPU for real
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    if "." not in target:
        target = f"charlm.evaluation.static.{target}"
    monkeypatch.setattr(target, fail)
    one_line_error(run_cli(command[0], run, *command[1:], cwd=work), *words)
