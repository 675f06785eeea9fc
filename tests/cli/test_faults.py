"""The twelve kinds of fault of issue 14, each met where a user meets it: through the CLI.

Each test is named after its kind; docs/errors.md has a row for each, with the message.
"""

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from charlm.store.checkpoint import load_checkpoint
from helpers import TINY, run_cli, run_ok

TRAIN = ["train", *TINY]


def one_line_error(result, *parts):
    """The command failed with one ``Error:`` line holding every part, and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(line) == 1, result.stderr
    for part in parts:
        assert part in line[0], result.stderr
    return line[0]


def test_1_every_training_target_is_used_each_epoch(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text[:445], encoding="utf-8")
    out = run_ok(*TRAIN, "--data", "c.txt", "--batch-size", 4, "--seq-len", 50,
                 "--max-epochs", 20, "--set", "train.max_steps=null",
                 "--set", "train.max_time=null", cwd=tmp_path).stdout
    # 399 training pairs: 4 streams of 99 and 3 over; ceil(99/50) = 2 steps an epoch
    assert "done: run" in out and ", 40 steps" in out


@pytest.mark.parametrize("args", [["--temperature", "1e-300"], ["--top-p", "1e-300"],
                                  ["--temperature", "1e-40", "--top-k", "2"]])
def test_2_tiny_sampling_values_act_as_greedy(trained, args):
    work, _, _ = trained
    greedy = run_ok("sample", "base", "--length", 40, "--temperature", 0, cwd=work).stdout
    assert run_ok("sample", "base", "--length", 40, *args, cwd=work).stdout == greedy


def test_2_values_a_later_stage_uses_are_checked_before_training(trained, tmp_path):
    work, corpus, _ = trained
    run_ok(*TRAIN, "--data", corpus, "--run-name", "cold", "--max-steps", 20,
           "--set", "sample.temperature=1e-40", cwd=work)      # its evaluations sample fine
    assert run_ok("sample", "cold", "--length", 10, cwd=work).returncode == 0
    one_line_error(run_cli(*TRAIN, "--data", corpus, "--set", "sample.top_k=9999", cwd=work),
                   "sample.top_k is 9999", "--set sample.top_k=N")
    (tmp_path / "s.txt").write_text("abc " * 300)
    one_line_error(run_cli(*TRAIN, "--data", tmp_path / "s.txt", "--set",
                           "train.log_gradflow_interval=5", "--set",
                           "train.gradflow_horizon=4000", cwd=work),
                   "train.gradflow_horizon 4000", "--set train.gradflow_horizon=K")


def poisoned(run: Path, into: Path) -> Path:
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["model"]["core.weight_hh_l0"][0, 0] = float("nan")
    into.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, into / "best.pt")
    return into / "best.pt"


@pytest.mark.parametrize("command", [["sample"], ["sample", "--temperature", "0"], ["eval"],
                                     ["inspect", "--gates"], ["visualize"], ["gradflow"],
                                     ["train", "--init-from"]])
def test_3_non_finite_weights_are_refused_naming_the_tensor(trained, tmp_path, command):
    work, _, run = trained
    bad = poisoned(run, tmp_path / "nan")
    args = [*command, bad] if command[0] != "train" else [*TRAIN, "--init-from", bad]
    one_line_error(run_cli(*args, cwd=work), "non-finite weights", "core.weight_hh_l0")


def test_4_a_changed_corpus_is_refused_on_resume(trained, tmp_path):
    work, corpus, _ = trained
    text = corpus.read_text(encoding="utf-8")
    mine = tmp_path / "mine.txt"
    mine.write_text(text, encoding="utf-8")
    run_ok(*TRAIN, "--data", mine, "--run-name", "drift", "--max-steps", 20, cwd=work)
    cut = int(len(text) * 0.9)
    mine.write_text(text[:cut] + text[cut:][::-1], encoding="utf-8")  # same characters
    before = (work / "checkpoints" / "drift" / "last.pt").read_bytes()
    one_line_error(run_cli("train", "--resume", "drift", "--max-steps", 30, cwd=work),
                   "changed since this run's checkpoint", "--allow-corpus-change")
    assert (work / "checkpoints" / "drift" / "last.pt").read_bytes() == before
    out = run_ok("train", "--resume", "drift", "--max-steps", 30, "--allow-corpus-change",
                 cwd=work).stdout
    assert "30 steps" in out


def test_5_two_runs_never_share_a_folder(trained, tmp_path, monkeypatch):
    work, corpus, _ = trained
    monkeypatch.setattr("time.strftime", lambda fmt, *a: "20260101-000000")  # same second
    a = run_ok(*TRAIN, "--data", corpus, "--max-steps", 2, cwd=tmp_path).stdout
    b = run_ok(*TRAIN, "--data", corpus, "--max-steps", 2, cwd=tmp_path).stdout
    assert "run 20260101-000000-lstm," in a and "run 20260101-000000-lstm-2," in b
    lock = tmp_path / "checkpoints" / "busy" / ".lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": os.getppid()}))
    one_line_error(run_cli(*TRAIN, "--data", corpus, "--run-name", "busy", cwd=tmp_path),
                   "is in use by process", "--run-name")
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": 2**22 + 12345}))  # gone
    (tmp_path / "runs" / "busy").mkdir(parents=True)
    (tmp_path / "runs" / "busy" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    took = run_ok(*TRAIN, "--data", corpus, "--run-name", "busy", "--max-steps", 2,
                  cwd=tmp_path)
    assert "taking over the lock" in took.stderr and not lock.exists()
    assert list((tmp_path / "runs" / "busy").glob("crashed-*/events.out.tfevents.*"))


def test_6_a_failing_event_write_warns_and_the_run_goes_on(trained, monkeypatch):
    from tensorboard.summary.writer import record_writer

    work, corpus, _ = trained
    original, calls = record_writer.RecordWriter.write, [0]

    def write(self, data):
        calls[0] += 1
        if calls[0] > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    result = run_ok(*TRAIN, "--data", corpus, "--run-name", "full", "--max-steps", 40,
                    cwd=work)
    assert "cannot write TensorBoard events" in result.stderr and "done: run full" in \
        result.stdout
    assert load_checkpoint(work / "checkpoints" / "full" / "last.pt")["state"]["step"] == 40


def test_6_other_writes_fail_in_one_line(trained, tmp_path):
    work, _, _ = trained
    (tmp_path / "f").write_text("x")
    for args in (["sample", "base", "--output", tmp_path / "f" / "s.txt"],
                 ["visualize", "base", "--output", tmp_path / "f" / "v.html"],
                 ["gradflow", "base", "--horizon", 5, "--windows", 1, "--output",
                  tmp_path / "f"]):
        one_line_error(run_cli(*args, cwd=work), "--output")


def test_7_advice_names_an_option_of_the_command(trained, tmp_path):
    work, _, _ = trained
    (tmp_path / "afile").write_text("x")
    for command in (["eval", "base", "--data", work / "corpus.txt"],
                    ["inspect", "base", "--gates"], ["visualize", "base"],
                    ["gradflow", "base", "--horizon", 5, "--windows", 1]):
        line = one_line_error(run_cli(*command, "--cache-dir", tmp_path / "afile" / "c",
                                      cwd=work), "cannot write the encoded corpus")
        assert "--cache-dir PATH" in line and "--set" not in line


@pytest.mark.parametrize("args, message", [
    (["train", "--run-name", "x" * 300], "use at most 100"),
    (["train", "--run-name", "con.run"], "Windows cannot create"),
    (["train", "--run-name", "trailing."], "Windows cannot create"),
    (["train", "--run-name", "latest"], "could not be named afterwards"),
    (["train", "--run-name", "-dash"], "could not be named afterwards"),
    (["train", "--data", "y" * 300 + ".txt"], "cannot use --data"),
    (["train", "--checkpoint-dir", "z" * 300 + "/c"], "choose another folder with "
                                                       "--checkpoint-dir"),
    (["train", "--log-dir", "corpus.txt/x"], "choose another folder with --log-dir"),
    (["sample", "w" * 300], "cannot use checkpoint"),
    (["eval", "--checkpoint-dir", "v" * 300], "cannot use --checkpoint-dir"),
])
def test_8_operating_system_limits_on_names_and_paths(trained, args, message):
    work, corpus, _ = trained
    extra = ["--data", corpus, "--max-steps", 2] if args[0] == "train" and "--data" not in \
        args else []
    one_line_error(run_cli(*args[:1], *TINY * (args[0] == "train"), *extra, *args[1:],
                           cwd=work), message)


def test_9_yaml_pitfalls(tmp_path):
    (tmp_path / "dup.yaml").write_text("model:\n  cell: gru\ntrain:\n  max_steps: 5\n"
                                       "model:\n  hidden_size: 8\n")
    one_line_error(run_cli("train", "--config", "dup.yaml", cwd=tmp_path),
                   "gives 'model' twice (lines 1 and 5)")
    (tmp_path / "wrong.yaml").write_text("model:\n  lr: 0.1\n")
    one_line_error(run_cli("train", "--config", "wrong.yaml", cwd=tmp_path),
                   "'lr' is a key of the 'optim' section; use optim.lr")


def damaged(run: Path, into: Path, change) -> Path:
    ckpt = torch.load(run / "last.pt", weights_only=True)
    change(ckpt)
    into.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, into / "last.pt")
    (into / "config.yaml").write_text("precious\n")
    return into


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("optimizer"), "it lacks optimizer"),
    (lambda c: c.pop("rng"), "it lacks rng"),
    (lambda c: c["state"].update(extra_field=1), "unknown fields extra_field"),
    (lambda c: c["model"].pop("decoder.bias"), "lacks decoder.bias"),
    (lambda c: c["model"].update(extra=torch.zeros(2)), "has unknown extra"),
    (lambda c: c.update(vocab=c["vocab"][::-1]), "invalid vocabulary"),
    (lambda c: c.update(format_version=2), "written by a newer charlm"),
    (lambda c: c["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)),
     "does not hold valid random-number-generator states"),
    (lambda c: c.update(hidden=tuple(h[:, :1] for h in c["hidden"])),
     "its carried hidden state is (1, 1, 32)"),
    (lambda c: c["state"].update(step=-5), "invalid step=-5"),
])
def test_10_incomplete_or_foreign_checkpoints_change_nothing(trained, tmp_path, change,
                                                              message):
    work, _, run = trained
    folder = damaged(run, tmp_path / "hurt", change)
    for args in (["--resume", folder], ["--init-from", folder / "last.pt"]):
        result = run_cli("train", *args, "--max-steps", 30, cwd=work)
        if args[0] == "--init-from" and message in (
                "it lacks optimizer", "it lacks rng", "unknown fields extra_field",
                "does not hold valid random-number-generator states",
                "its carried hidden state is (1, 1, 32)", "invalid step=-5"):
            continue  # fine-tuning needs only the weights, vocabulary and config
        one_line_error(result, message)
    assert (folder / "config.yaml").read_text() == "precious\n"


def test_11_evaluating_other_or_very_short_text(trained, tmp_path):
    work, _, _ = trained
    (tmp_path / "empty.txt").write_text("")
    one_line_error(run_cli("eval", "base", "--data", tmp_path / "empty.txt", cwd=work),
                   "empty.txt is empty")
    (tmp_path / "one.txt").write_text("a")
    one_line_error(run_cli("eval", "base", "--data", tmp_path / "one.txt", cwd=work),
                   "holds 1 character(s); scoring needs at least 2")
    small = json.loads(run_ok("eval", "base", "--batch-size", 1, "--json", cwd=work).stdout)
    huge = run_ok("eval", "base", "--batch-size", 100000, "--json", cwd=work)
    assert json.loads(huge.stdout)["loss_nats"] == pytest.approx(small["loss_nats"], rel=0.01)
    assert "so that each stream is at least 512 long" in huge.stderr


def test_12_symbolic_links_in_a_corpus_folder_are_logged(tmp_path, stdlib_text):
    corpus, elsewhere = tmp_path / "corpus", tmp_path / "elsewhere"
    corpus.mkdir()
    elsewhere.mkdir()
    (corpus / "a.txt").write_text(stdlib_text[:20_000])
    (elsewhere / "b.txt").write_text(stdlib_text[20_000:40_000])
    (corpus / "linked").symlink_to(elsewhere, target_is_directory=True)
    (corpus / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (corpus / "file-link.txt").symlink_to(elsewhere / "b.txt")
    (corpus / "z-again.txt").symlink_to(corpus / "a.txt")
    result = run_ok(*TRAIN, "--data", corpus, "--max-steps", 2, cwd=tmp_path)
    assert f"z-again.txt (the same file as {corpus / 'a.txt'}, already read)" in result.stderr
    assert "linked (a link to a folder, not followed)" in result.stderr
    assert "dangling.txt (a link whose target is missing)" in result.stderr
    assert "encoded 2 files" in result.stderr          # a.txt and the link to a file


def test_sample_says_the_seed_it_drew(trained):
    work, _, _ = trained
    first = run_ok("sample", "base", "--length", 30, cwd=work)
    seed = first.stderr.split("--seed ")[1].split()[0]
    again = run_ok("sample", "base", "--length", 30, "--seed", seed, cwd=work)
    assert again.stdout == first.stdout


def test_an_encoding_killed_midway_leaves_no_folder_behind(tmp_path, stdlib_text):
    cache = tmp_path / "data" / "cache"
    stale = cache / f".tmp-0123abcd-{os.uname().nodename}-{2**22 + 4321}"  # a dead pid
    stale.mkdir(parents=True)
    (stale / "ids.bin").write_bytes(b"\x00" * 100)
    (tmp_path / "c.txt").write_text(stdlib_text[:20_000])
    run_ok(*TRAIN, "--data", "c.txt", "--max-steps", 2, cwd=tmp_path)
    assert not stale.exists()


def test_a_run_that_fails_before_training_leaves_no_folders(tmp_path):
    one_line_error(run_cli(*TRAIN, "--data", "missing.txt", "--run-name", "gone", cwd=tmp_path),
                   "missing.txt", "--data")
    assert not (tmp_path / "checkpoints" / "gone").exists()
    assert not (tmp_path / "runs" / "gone").exists()


def test_6_a_checkpoint_write_that_fails_mid_file_is_one_line(trained, monkeypatch):
    """torch.save turns a full disk or a file-size limit into a RuntimeError."""
    work, corpus, _ = trained

    def full(obj, fh, *args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")

    monkeypatch.setattr(torch, "save", full)
    one_line_error(run_cli(*TRAIN, "--data", corpus, "--run-name", "diskfull", "--max-steps", 5,
                           cwd=work), "cannot write checkpoint", "No space left on device")


def test_8_a_corpus_path_that_is_not_utf8_trains_and_resumes(tmp_path, stdlib_text):
    name = os.fsdecode(b"bad\xffbyte.txt")
    (tmp_path / name).write_text(stdlib_text[:20000], encoding="utf-8")
    for args in (["--run-name", "odd", "--max-steps", 3], ["--resume", "odd", "--max-steps", 5]):
        assert "done: run odd" in run_ok(*TRAIN, "--data", tmp_path / name, *args,
                                         cwd=tmp_path).stdout


def test_9_config_files_apply_in_order_none_ignored(trained):
    work, corpus, _ = trained
    (work / "a.yaml").write_text("model:\n  cell: gru\ntrain:\n  max_steps: 4\n")
    (work / "b.yaml").write_text("train:\n  max_steps: 3\n")
    out = run_ok("train", *TINY, "--config", "a.yaml", "--config", "b.yaml", "--data", corpus,
                 "--run-name", "two-configs", cwd=work)
    assert "done: run two-configs, 3 steps" in out.stdout and "model: gru" in out.stderr


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_2_a_non_finite_number_is_named_as_such(tmp_path, value):
    one_line_error(run_cli("train", "--max-time", value, cwd=tmp_path),
                   f"train.max_time (option) is {value}; it must be a finite number")


def test_10_resume_with_nothing_left_names_the_limit_reached(trained, tmp_path):
    work, corpus, _ = trained
    run_ok(*TRAIN, "--data", corpus, "--run-name", "ep", "--max-epochs", 1,
           "--set", "train.max_steps=null", "--set", "train.max_time=null", cwd=work)
    result = run_ok("train", "--resume", "ep", "--max-steps", 100000, cwd=work)
    assert "raise --max-epochs to continue" in result.stderr
    assert "Embedding dir" not in result.stdout + result.stderr


def test_8_a_file_in_the_way_of_a_run_folder_names_the_run_name(trained):
    work, corpus, _ = trained
    (work / "checkpoints" / "notes.md").write_text("mine\n")
    one_line_error(run_cli(*TRAIN, "--data", corpus, "--run-name", "notes.md", cwd=work),
                   "File exists; choose another --run-name")
    assert (work / "checkpoints" / "notes.md").read_text() == "mine\n"


def test_ctrl_c_while_sampling_exits_130_without_a_traceback(trained, monkeypatch):
    import charlm.generation.sampling

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(charlm.generation.sampling, "generate", interrupted)
    result = run_cli("sample", "base", "--length", 50, cwd=trained[0])
    assert result.returncode == 130 and "Traceback" not in result.stderr
    assert "Aborted" not in result.stderr + result.stdout


def test_6_a_failed_output_write_keeps_the_previous_file(trained, tmp_path, monkeypatch):
    work, _, _ = trained
    keep = tmp_path / "keep.txt"
    keep.write_text("precious\n")
    real_write = None

    class Full:
        """A file object whose writes fail as on a full disk once 100 characters are in."""

        def __init__(self, fh):
            self.fh, self.n = fh, 0

        def write(self, text):
            self.n += len(text)
            if self.n > 100:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(text)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    import charlm.cli.common as common
    real_write = common.replacing

    @__import__("contextlib").contextmanager
    def failing(output):
        with real_write(output) as fh:
            yield Full(fh)

    monkeypatch.setattr(common, "replacing", failing)
    one_line_error(run_cli("sample", "base", "--length", 2000, "--output", keep, cwd=work),
                   "No space left on device", "--output")
    assert keep.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
