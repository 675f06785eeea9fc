"""Numerical faults, refused resumes, fine-tuning, inspect, and bad input at the command line."""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from helpers import CONFIGS, charlm

from charlm.checkpoint import load_checkpoint, save_checkpoint
from charlm.config import build_config
from charlm.data import TBPTTBatches
from charlm.models import CharLM
from charlm.errors import NumericalError
from charlm.training import Hooks, TrainState, fit, make_optimizer

TINY = ["--config", CONFIGS / "tiny.yaml", "--no-progress", "--seed", 1]


def poison(model, steps):
    """Make the model's logits NaN on the given 1-based forward calls."""
    calls = {"n": 0}

    def hook(module, inputs, output):
        calls["n"] += 1
        return output * float("nan") if calls["n"] in steps else output

    model.decoder.register_forward_hook(hook)


def small_fit(model, max_steps, **sets):
    cfg = build_config(sets=[f"train.max_steps={max_steps}", "train.max_time=null",
                             "train.progress=false", "train.log_interval=1"] +
                       [f"{k}={v}" for k, v in sets.items()])
    ids = np.random.default_rng(0).integers(0, 12, 400).astype(np.uint8)
    logged = []
    state, _ = fit(model, make_optimizer(model, cfg.optim), TBPTTBatches(ids, 4, 8),
                   TrainState(), Hooks(on_log=lambda s, m: logged.append(m)), cfg.train,
                   cfg.optim)
    return state, logged


def test_nonfinite_step_is_skipped_counted_and_logged():
    torch.manual_seed(0)
    model = CharLM(12, "gru", 8, 16, 1)
    poison(model, {3})
    state, logged = small_fit(model, 6)
    assert state.nonfinite_steps == 1 and state.step == 6
    assert logged[2]["nonfinite_steps"] == 1 and all(math.isfinite(m["loss"]) for m in logged)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nonfinite_streak_stops_with_advice():
    model = CharLM(12, "rnn", 8, 16, 1)
    poison(model, set(range(2, 100)))
    with pytest.raises(NumericalError) as info:
        small_fit(model, 50, **{"train.max_nonfinite": 4, "optim.grad_clip": 0.5})
    text = str(info.value)
    assert "stopped at step 5" in text and "4 non-finite" in text
    assert "grad_clip 0.5" in text and "lower --lr" in text


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint({"format_version": 1, "x": torch.ones(3)}, tmp_path / "last.pt")
    with pytest.raises(Exception):
        save_checkpoint({"format_version": 1, "bad": lambda: 0}, path)  # unpicklable mid-write
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run on stdlib text: (workdir, corpus, run folder)."""
    from conftest import stdlib_slice

    work = tmp_path_factory.mktemp("robust")
    corpus = work / "corpus.txt"
    corpus.write_text(stdlib_slice(60_000) + "# café naïve — ü\n" * 50, encoding="utf-8")
    charlm("train", *TINY, "--data", corpus, "--run-name", "base", "--max-steps", 20, cwd=work)
    return work, corpus, work / "checkpoints" / "base"


def test_resume_refuses_other_characters(trained, tmp_path):
    work, _, _ = trained
    other = tmp_path / "korean.txt"
    other.write_text("안녕하세요 여러분\n" * 2000, encoding="utf-8")
    proc = charlm("train", "--resume", "base", "--data", other, cwd=work, check=False)
    assert proc.returncode == 1 and "vocabulary lacks" in proc.stderr and "'안'" in proc.stderr


def test_resume_refuses_frozen_keys_and_logs_overrides(trained):
    work, _, run = trained
    proc = charlm("train", "--resume", "base", "--hidden-size", 64, cwd=work, check=False)
    assert proc.returncode == 1 and "cannot change model.hidden_size (32 -> 64)" in proc.stderr
    proc = charlm("train", "--resume", str(run / "last.pt"), "--max-steps", 30, "--lr", 0.002,
                  cwd=work)
    assert "resume override: train.max_steps 20 -> 30" in proc.stderr
    assert "resume override: optim.lr 0.01 -> 0.002" in proc.stderr
    assert load_checkpoint(run / "last.pt")["state"]["step"] == 30


def test_init_from_starts_a_new_run_from_the_weights(trained):
    work, corpus, run = trained
    proc = charlm("train", "--init-from", run / "best.pt", "--data", corpus, "--run-name",
                  "tuned", "--max-steps", 5, "--seed", 2, "--no-progress", cwd=work)
    assert "done: run tuned, 5 steps" in proc.stdout
    cfg = yaml.safe_load((work / "checkpoints" / "tuned" / "config.yaml").read_text())
    assert cfg["model"]["hidden_size"] == 32   # the checkpoint's model, not the defaults
    proc = charlm("train", "--init-from", run / "best.pt", "--hidden-size", 99, cwd=work,
                  check=False)
    assert proc.returncode == 1 and "model.hidden_size 32 -> 99" in proc.stderr


def test_inspect_prints_what_the_checkpoint_holds(trained):
    work, _, run = trained
    out = charlm("inspect", run / "best.pt", cwd=work).stdout
    for part in ("format 1", "torch", "step", "val loss", "parameters", "vocab_size",
                 "hidden_size: 32"):
        assert part in out


def test_seed_is_logged_and_recorded(trained):
    work, _, run = trained
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["seed"] == 1 and cfg["train"]["run_name"] == "base"


@pytest.mark.parametrize("args, message", [
    (["--prime", "∮ unseen"], "the model never saw: '∮' (U+222E)"),
    (["--temperature", -0.5], "temperature is -0.5; use 0 (greedy) or a positive value"),
    (["--top-k", 0], "top_k is 0; it must be between 1 and the vocabulary size"),
    (["--top-p", 1.5], "top_p is 1.5; it must be in (0, 1]"),
    (["--length", -1], "length is -1; it must be 0 or more"),
])
def test_sample_bad_options(trained, args, message):
    work, _, run = trained
    proc = charlm("sample", run, *args, cwd=work, check=False)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr


def test_sample_edge_cases_and_encodings(trained, tmp_path):
    work, _, run = trained
    assert charlm("sample", run, "--length", 0, cwd=work).stdout == "\n"
    dropped = charlm("sample", run, "--prime", "def∮ ", "--drop-unknown", "--length", 5,
                     cwd=work)
    assert dropped.stdout.startswith("def ") and "dropped from the prime" in dropped.stderr
    greedy = charlm("sample", run, "--temperature", 0, "--length", 40, cwd=work).stdout
    assert greedy == charlm("sample", run, "--top-k", 1, "--length", 40, cwd=work).stdout
    out = tmp_path / "s.txt"
    charlm("sample", run, "--prime", "é", "--length", 10, "--output", out, cwd=work)
    assert out.read_text(encoding="utf-8").startswith("é")
    ascii_out = charlm("sample", run, "--prime", "é", "--length", 10, cwd=work,
                       env={"PYTHONIOENCODING": "ascii"})
    assert ascii_out.returncode == 0 and ascii_out.stdout.startswith("\\xe9")


@pytest.mark.parametrize("setup, args, message", [
    (lambda d: d.joinpath("bad.yaml").write_text("train: [1,\n"), ["--config", "bad.yaml"],
     "not valid YAML at line"),
    (lambda d: d.joinpath("afile").write_text("x"), ["--checkpoint-dir", "afile/sub"],
     "cannot write to afile/sub"),
    (lambda d: d.joinpath("v.txt").write_text("abcd" * 200), ["--data", "v.txt", "--set",
     "data.val_frac=0.001", "--set", "data.train_frac=0.999"], "the val split has 1 character(s) of 800"),
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
    proc = charlm("train", *TINY, "--max-steps", 2, *args, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr


def test_too_short_corpus_names_sizes(tmp_path):
    (tmp_path / "c.txt").write_text("abc " * 50)
    proc = charlm("train", *TINY, "--data", "c.txt", cwd=tmp_path, check=False)
    assert "batch_size 8 x seq_len 32 needs 257" in proc.stderr and "lower --batch-size" in \
        proc.stderr


def test_non_ascii_round_trip(tmp_path):
    text = "Ελληνικά 한국어 中文 кириллица 🙂 emoji\n" * 300
    (tmp_path / "u.txt").write_text(text, encoding="utf-8")
    charlm("train", *TINY, "--data", "u.txt", "--run-name", "u", "--max-steps", 30, cwd=tmp_path)
    vocab = load_checkpoint(tmp_path / "checkpoints" / "u" / "best.pt")["vocab"]
    assert "🙂" in vocab and len(vocab) == len(set(text))
    out = charlm("sample", "--prime", "한국🙂", "--length", 60, "--seed", 0, cwd=tmp_path).stdout
    assert out.startswith("한국🙂") and set(out) <= set(vocab) | {"\n"}


def test_crlf_policy_is_the_same_in_training_and_priming(tmp_path):
    (tmp_path / "w.txt").write_bytes(b"line one\r\nline two\rline three\n" * 300)
    charlm("train", *TINY, "--data", "w.txt", "--run-name", "w", "--max-steps", 5, cwd=tmp_path)
    vocab = load_checkpoint(tmp_path / "checkpoints" / "w" / "best.pt")["vocab"]
    assert "\r" not in vocab and "\n" in vocab
    out = charlm("sample", "--prime", "line\r\none", "--length", 5, cwd=tmp_path).stdout
    assert out.startswith("line\none")


@pytest.mark.parametrize("args, message", [
    (["train", "--config", "/bin/ls"], "is not UTF-8 text; give a YAML file"),
    (["train", "--seed", "99999999999999999999"], "must be <= 9223372036854775807"),
    (["train", "--lr", "1e38"], "optim.lr (option) is 1e+38; it must be <= 10"),
    (["train", "--run-name", "../escape"], "must be a plain folder name"),
    (["train", "--data", "/dev/null"], "is not a regular file or directory"),
    (["train", "--data", "/bin/ls"], "looks like binary data (it holds NUL bytes)"),
    (["train", "--set", "optim.min_lr=0.1"], "optim.min_lr (0.1) is above optim.lr"),
    (["sample", "base", "--temperature", "nan"], "temperature is nan"),
    (["eval", "base", "--batch-size", "-3"], "Invalid value for '--batch-size'"),
    (["gradflow", "--hidden-size", "0"], "Invalid value for '--hidden-size'"),
    (["gradflow", "--horizon", "100000"], "Invalid value for '--horizon'"),
    (["sample", "corpus.txt"], "is not a checkpoint: it is not a file torch.save wrote"),
])
def test_more_bad_input_is_one_line(trained, args, message):
    work, _, _ = trained
    proc = charlm(*args, cwd=work, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr


def test_incomplete_checkpoint_and_unwritable_gradflow_out(trained, tmp_path):
    work, _, run = trained
    ckpt = torch.load(run / "best.pt", weights_only=True)
    del ckpt["vocab"]
    torch.save(ckpt, tmp_path / "novocab.pt")
    proc = charlm("inspect", tmp_path / "novocab.pt", cwd=work, check=False)
    assert proc.returncode == 1 and "incomplete charlm checkpoint: it lacks vocab" in proc.stderr
    (tmp_path / "afile").write_text("x")
    proc = charlm("gradflow", "--cell", "rnn", "--hidden-size", 8, "--horizon", 5, "--windows",
                  1, "--data", work / "corpus.txt", "--out", tmp_path / "afile", cwd=work,
                  check=False)
    assert proc.returncode == 1 and "choose another --output folder" in proc.stderr


def test_resuming_an_older_checkpoint_never_overwrites_last(trained):
    work, corpus, _ = trained
    charlm("train", *TINY, "--data", corpus, "--run-name", "older", "--max-steps", 40,
           "--stop-at-step", 35, "--set", "train.eval_interval=10", cwd=work)
    run = work / "checkpoints" / "older"
    before = (run / "last.pt").read_bytes()
    assert load_checkpoint(run / "best.pt")["state"]["step"] <= 30
    proc = charlm("train", "--resume", run / "best.pt", cwd=work, check=False)
    assert proc.returncode == 1 and "would overwrite last.pt" in proc.stderr
    assert (run / "last.pt").read_bytes() == before


def test_eval_hardly_depends_on_batch_size_and_takes_run_names(trained):
    work, _, _ = trained
    one = json.loads(charlm("eval", "base", "--batch-size", 1, "--json", cwd=work).stdout)
    many = json.loads(charlm("eval", "base", "--batch-size", 64, "--json", cwd=work).stdout)
    assert one["chars"] == many["chars"]
    assert many["loss_nats"] == pytest.approx(one["loss_nats"], rel=0.01)
    assert charlm("sample", "base", "--length", 5, cwd=work).returncode == 0


def test_empty_split_is_explained(tmp_path, trained):
    work, corpus, _ = trained
    charlm("train", *TINY, "--data", corpus, "--run-name", "notest", "--max-steps", 3,
           "--set", "data.train_frac=0.9", "--set", "data.val_frac=0.1", cwd=work)
    proc = charlm("eval", "notest", "--split", "test", cwd=work, check=False)
    assert proc.returncode == 1 and "split of" in proc.stderr and "is empty" in proc.stderr


def _fit_with(model, optimizer, max_steps, **sets):
    cfg = build_config(sets=[f"train.max_steps={max_steps}", "train.max_time=null",
                             "train.progress=false"] + [f"{k}={v}" for k, v in sets.items()])
    ids = np.random.default_rng(0).integers(0, 12, 400).astype(np.uint8)
    state, _ = fit(model, optimizer, TBPTTBatches(ids, 4, 8), TrainState(), Hooks(), cfg.train,
                   cfg.optim)
    return state


def test_fused_optimizer_skips_on_the_device_like_the_eager_path():
    """The CUDA path (fused AdamW, skip via found_inf, counts read at log points) run on the
    CPU gives the same skipped count and weights as the per-step path."""
    results = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = CharLM(12, "gru", 8, 16, 1)
        poison(model, {3, 7})
        opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=fused or None)
        state = _fit_with(model, opt, 12, **{"train.log_interval": 5})
        assert state.nonfinite_steps == 2 and state.step == 12
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fused_optimizer_streak_stops_at_the_next_log_point():
    model = CharLM(12, "rnn", 8, 16, 1)
    poison(model, set(range(2, 100)))
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=True)
    with pytest.raises(NumericalError, match="stopped at step 10: 9 non-finite"):
        _fit_with(model, opt, 50, **{"train.max_nonfinite": 4, "train.log_interval": 10})
    after = list(model.parameters())
    assert not torch.equal(before[0], after[0])  # step 1 was applied ...
    assert all(torch.isfinite(p).all() for p in after)  # ... and nothing non-finite since
