"""``charlm eval`` in-process: whole splits, batch sizes, run names, empty splits, and dynamic
evaluation's report and refusals."""

import json

import pytest
from helpers import TINY, one_line_error, run_cli, run_ok


def test_eval_hardly_depends_on_batch_size_and_takes_run_names(trained):
    work, _, _ = trained
    one = json.loads(run_ok("eval", "base", "--batch-size", 1, "--json", cwd=work).stdout)
    many = json.loads(run_ok("eval", "base", "--batch-size", 64, "--json", cwd=work).stdout)
    assert one["chars"] == many["chars"]
    assert many["loss_nats"] == pytest.approx(one["loss_nats"], rel=0.01)
    run_ok("sample", "base", "--length", 5, cwd=work)


def test_empty_split_is_explained(tmp_path, trained):
    work, corpus, _ = trained
    run_ok("train", *TINY, "--data", corpus, "--run-name", "notest", "--max-steps", 3,
           "--set", "data.train_frac=0.9", "--set", "data.val_frac=0.1", cwd=work)
    proc = run_cli("eval", "notest", "--split", "test", cwd=work)
    assert proc.returncode == 1 and "split of" in proc.stderr and "is empty" in proc.stderr


def test_dynamic_evaluation_reports_its_protocol_apart_from_the_static_one(trained):
    work, _, _ = trained
    static = json.loads(run_ok("eval", "base", "--json", cwd=work).stdout)
    assert static["protocol"] == "static" and "dynamic" not in static
    dynamic = json.loads(run_ok("eval", "base", "--dynamic", "--dynamic-lr", 1e-3,
                                "--dynamic-seq-len", 40, "--json", cwd=work).stdout)
    assert dynamic["protocol"] == "dynamic" and dynamic["chars"] == static["chars"]
    assert dynamic["dynamic"] | {"epsilon": 0} == {
        "method": "rms", "lr": 1e-3, "decay": 0.02, "seq_len": 40, "epsilon": 0,
        "stat_streams": 16, "stat_chunks": 50}
    assert dynamic["loss_nats"] != static["loss_nats"] and dynamic["elapsed_s"] > 0
    line = run_ok("eval", "base", "--dynamic", "--dynamic-method", "sgd", cwd=work).stdout
    assert line.startswith("val (dynamic evaluation: sgd, lr 0.1, decay 0, seq_len 50; ")


def test_dynamic_defaults_in_the_help_are_the_real_ones():
    from charlm.cli import main
    from charlm.evaluation.dynamic import DEFAULTS, SEQ_LEN

    params = {p.name: p.help for p in main.commands["eval"].params}
    (sgd_lr, sgd_decay), (rms_lr, rms_decay) = DEFAULTS["sgd"], DEFAULTS["rms"]
    assert f"{rms_lr:g} for rms, {sgd_lr:g} for sgd" in params["dynamic_lr"]
    assert f"{rms_decay:g} for rms, {sgd_decay:g} for sgd" in params["dynamic_decay"]
    assert f"[default: {SEQ_LEN}]" in params["dynamic_seq_len"]


@pytest.mark.parametrize("args, message", [
    (["--dynamic-lr", 0.1, "--dynamic-decay", 0.1],
     "--dynamic-lr, --dynamic-decay: for dynamic evaluation only; add --dynamic"),
    (["--dynamic", "--batch-size", 4],
     "--dynamic reads the split as one stream (batch 1): drop --batch-size"),
    (["--dynamic", "--dynamic-lr", 0], "Invalid value for '--dynamic-lr'"),
    (["--dynamic", "--dynamic-decay", 2], "Invalid value for '--dynamic-decay'"),
])
def test_dynamic_refusals(trained, args, message):
    work, _, _ = trained
    proc = run_cli("eval", "base", *args, cwd=work)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr


def test_evaluating_other_or_very_short_text(trained, tmp_path):
    work, _, _ = trained
    (tmp_path / "empty.txt").write_text("")
    one_line_error(run_cli("eval", "base", "--data", tmp_path / "empty.txt", cwd=work),
                   "empty.txt is empty")
    (tmp_path / "one.txt").write_text("a")
    one_line_error(run_cli("eval", "base", "--data", tmp_path / "one.txt", cwd=work),
                   "split of {} is empty (1 character in the corpus); scoring needs at least 2"
                   .format(tmp_path / "one.txt"))
    small = json.loads(run_ok("eval", "base", "--batch-size", 1, "--json", cwd=work).stdout)
    huge = run_ok("eval", "base", "--batch-size", 100000, "--json", cwd=work)
    assert json.loads(huge.stdout)["loss_nats"] == pytest.approx(small["loss_nats"], rel=0.01)
    assert "so that each stream is at least 512 long" in huge.stderr


@pytest.mark.slow
def test_sigterm_ends_a_long_evaluation_at_once(trained, tmp_path):
    """SIGTERM during `charlm eval` waited for the whole evaluation (or killed it without a
    word); now it stops like Ctrl-C, status 143, with no figure printed."""
    import signal

    from helpers import start_charlm

    work, corpus, _ = trained
    big = tmp_path / "big.txt"
    big.write_text(corpus.read_text(encoding="utf-8") * 300, encoding="utf-8")
    proc = start_charlm("eval", "base", "--data", big, "--split", "train", "--batch-size", 1,
                        cwd=work)
    while "corpus" not in (line := proc.stderr.readline()):  # the text is encoded: scoring
        assert line, "the command ended before it scored anything"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "loss" not in out
