"""Bad input at the command line: one line naming the problem and the fix, a non-zero status,
no traceback (in-process: a traceback here is an exception that fails the test)."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from helpers import TINY, one_line_error, run_cli, with_device


def test_bad_input_is_one_line_without_traceback(tmp_path):
    proc = run_cli("train", "--set", "model.hiden_size=3", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "did you mean 'model.hidden_size'" in proc.stderr
    proc = run_cli("train", "--data", tmp_path / "missing.txt", cwd=tmp_path)
    assert proc.returncode == 1 and "no such file or directory" in proc.stderr
    proc = run_cli("sample", cwd=tmp_path)
    assert proc.returncode == 1 and "no runs with checkpoints" in proc.stderr


@pytest.mark.parametrize("setup, args, message", [
    (lambda d: d.joinpath("bad.yaml").write_text("train: [1,\n"), ["--config", "bad.yaml"],
     "not valid YAML at line"),
    (lambda d: d.joinpath("afile").write_text("x"), ["--checkpoint-dir", "afile/sub"],
     "cannot write to afile/sub"),
    (lambda d: d.joinpath("v.txt").write_text("abcd" * 200), ["--data", "v.txt", "--set",
     "data.val_frac=0.001", "--set", "data.train_frac=0.999"],
     "the val split has only 1 character (800 characters in the corpus); scoring "
     "needs at least 2"),
    (lambda d: d.joinpath("e").mkdir(), ["--data", "e"], "holds no text files"),
    (lambda d: d.joinpath("w.txt").write_text(" \n\n  "), ["--data", "w.txt"],
     "empty or only whitespace"),
    (lambda d: d.joinpath("b.txt").write_bytes(b"abc\xc3\x28def" * 50), ["--data", "b.txt"],
     "b.txt is not valid utf-8: byte 0xc3 at byte offset 3"),
    (lambda d: d.joinpath("u16.txt").write_text("hello there\n" * 50, encoding="utf-16"),
     ["--data", "u16.txt"], "looks like UTF-16"),
])
def test_train_bad_input_messages(tmp_path, setup, args, message):
    setup(tmp_path)
    proc = run_cli("train", *TINY, "--max-steps", 2, *args, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr


def test_too_short_corpus_names_sizes(tmp_path):
    (tmp_path / "c.txt").write_text("abc " * 50)
    proc = run_cli("train", *TINY, "--data", "c.txt", cwd=tmp_path)
    assert "batch_size 8 x seq_len 32 needs 257" in proc.stderr and "lower --batch-size" in \
        proc.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--config", "/bin/ls"], "is not UTF-8 text; give a YAML file"),
    (["train", "--seed", "99999999999999999999"], "must be <= 9223372036854775807"),
    (["train", "--lr", "1e38"], "optim.lr (--lr) is 1e+38; it must be <= 10"),
    (["train", "--run-name", "../escape"], "must be a plain folder name"),
    (["train", "--data", "/dev/null"], "is not a regular file or directory"),
    (["train", "--data", "/bin/ls"], "looks like binary data (it holds NUL bytes)"),
    (["train", "--set", "optim.min_lr=0.1"], "optim.min_lr (0.1) is above optim.lr"),
    (["sample", "base", "--temperature", "nan"],
     "sample.temperature (--temperature) is nan; it must be a finite number"),
    (["eval", "base", "--batch-size", "-3"], "Invalid value for '--batch-size'"),
    (["gradflow", "--hidden-size", "0"], "Invalid value for '--hidden-size'"),
    (["gradflow", "--horizon", "100000"], "Invalid value for '--horizon'"),
    (["sample", "corpus.txt"], "is not a checkpoint: it is not a file torch.save wrote"),
])
def test_more_bad_input_is_one_line(trained, args, message):
    work, _, _ = trained
    proc = run_cli(*args, cwd=work)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr


HUGE = 60_000  # characters of a hostile value: under the 128 KiB one argument may hold


@pytest.mark.parametrize("args, start", [
    (["train", "--run-name", "x/" * HUGE], "Error: train.run_name 'x/x/"),
    (["train", "--data", "/nowhere/" + "y" * HUGE], "Error: cannot use --data '/nowhere/yy"),
    (["sample", "base", "--stop", "∮" * HUGE], "Error: --stop '∮∮"),
    (["visualize", "base", "--unit", "z" * HUGE], "Error: --unit 'zz"),
    (["bench", "--sizes", "q" * HUGE], "Error: --sizes 'qq"),
    (["train", "--set", "tune.defaults=" + "w" * HUGE], "Error: "),
])
def test_a_hostile_value_is_quoted_shortened(trained, args, start):
    """Every message that quotes a value the user gave cuts it (errors.shorten): one short
    line, however long the value."""
    work, _, _ = trained
    proc = run_cli(*args, cwd=work)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert lines[-1].startswith(start) and len(lines[-1]) < 600, lines[-1][:300]


def test_incomplete_checkpoint_and_unwritable_gradflow_out(trained, tmp_path):
    work, _, run = trained
    ckpt = torch.load(run / "best.pt", weights_only=True)
    del ckpt["vocab"]
    torch.save(ckpt, tmp_path / "novocab.pt")
    proc = run_cli("inspect", tmp_path / "novocab.pt", cwd=work)
    assert proc.returncode == 1 and "incomplete charlm checkpoint: it lacks vocab" in proc.stderr
    (tmp_path / "afile").write_text("x")
    proc = run_cli("gradflow", "--cell", "rnn", "--hidden-size", 8, "--horizon", 5, "--windows",
                   1, "--data", work / "corpus.txt", "--out", tmp_path / "afile", cwd=work)
    assert proc.returncode == 1 and "choose another --output folder" in proc.stderr


def test_advice_names_an_option_of_the_command(trained, tmp_path):
    work, _, _ = trained
    (tmp_path / "afile").write_text("x")
    for command in (["eval", "base", "--data", work / "corpus.txt"],
                    ["inspect", "base", "--gates"], ["visualize", "base"],
                    ["gradflow", "base", "--horizon", 5, "--windows", 1]):
        line = one_line_error(run_cli(*command, "--cache-dir", tmp_path / "afile" / "c",
                                      cwd=work), "cannot write the encoded corpus")
        assert "--cache-dir PATH" in line and "--set" not in line


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("args, advice", [
    (["sample", "base", "--length", 5], "or write a file with --output FILE"),
    (["eval", "base", "--batch-size", 4], "send it elsewhere (> FILE)"),
    (["inspect", "base"], "send it elsewhere (> FILE)"),
])
def test_a_full_standard_output_says_so(trained, args, advice):
    """`charlm sample > /dev/full` said "check the paths and folders given", though none
    were: the error names standard output, and eval's short report (buffered until exit) is
    reported too, not lost in an exit-time traceback."""
    work, _, _ = trained
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "charlm", *with_device(args)], cwd=work,
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    result = SimpleNamespace(returncode=proc.returncode, stderr=proc.stderr, stdout="")
    line = one_line_error(result, "cannot write to standard output: No space left on device",
                          advice)
    assert "check the paths" not in line and "Exception ignored" not in proc.stderr
