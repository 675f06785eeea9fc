"""``charlm train`` in-process: options and help, runs never overwritten, pauses, fine-tuning,
and what it does to the text it reads (any script, any line ending)."""

import yaml
from helpers import CONFIGS, TINY, run_cli, run_ok

from charlm.store.checkpoint import load_checkpoint


def test_existing_run_is_never_overwritten(tmp_path, corpus_file):
    run = tmp_path / "checkpoints" / "keep"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"precious")
    proc = run_cli("train", "--config", CONFIGS / "tiny.yaml", "--data", corpus_file,
                   "--run-name", "keep", cwd=tmp_path)
    assert proc.returncode == 1 and "already has checkpoints" in proc.stderr
    assert (run / "best.pt").read_bytes() == b"precious"


def test_help_lists_every_option_with_default(tmp_path):
    out = run_ok("train", "--help", cwd=tmp_path).stdout
    for option in ("--cell", "--data", "--max-time", "--hidden-size", "--grad-clip", "--set",
                   "--checkpoint-dir", "--log-dir", "--seed", "--device"):
        assert option in out
    assert "[default: lstm, config model.cell]" in " ".join(out.split())


def test_help_names_every_cell_and_every_named_corpus(tmp_path):
    from charlm.config.cells import cell_names
    from charlm.data.sources import NAMED_CORPORA

    words = " ".join(run_ok("train", "--help", cwd=tmp_path).stdout.split())
    first = " ".join(run_ok("--help", cwd=tmp_path).stdout.split())
    for name in NAMED_CORPORA:
        assert name in words.split("--data")[1].split("--")[0], name
    for name in ("RNN", "LSTM", "GRU", "minGRU", "minLSTM", "IndRNN"):
        assert name in first.split("Options")[0], name
    assert set(cell_names()) == {"rnn", "lstm", "gru", "mingru", "minlstm", "indrnn"}


def test_stop_at_an_evaluation_step_is_a_pause(tmp_path, corpus_file):
    args = ["--config", CONFIGS / "tiny.yaml", "--data", corpus_file, "--no-progress", "--seed",
            1, "--max-steps", 40, "--max-time", 10000, "--run-name", "p"]
    out = run_ok("train", *args, "--stop-at-step", 20, cwd=tmp_path).stdout  # eval_interval 20
    assert "paused: run p at step 20" in out
    assert "done: run p, 40 steps" in run_ok("train", "--resume", "p", cwd=tmp_path).stdout


def test_init_from_starts_a_new_run_from_the_weights(trained):
    work, corpus, run = trained
    proc = run_ok("train", "--init-from", run / "best.pt", "--data", corpus, "--run-name",
                  "tuned", "--max-steps", 5, "--seed", 2, "--no-progress", cwd=work)
    assert "done: run tuned, 5 steps" in proc.stdout
    cfg = yaml.safe_load((work / "checkpoints" / "tuned" / "config.yaml").read_text())
    assert cfg["model"]["hidden_size"] == 32   # the checkpoint's model, not the defaults
    proc = run_cli("train", "--init-from", run / "best.pt", "--hidden-size", 99, cwd=work)
    assert proc.returncode == 1 and "model.hidden_size 32 -> 99" in proc.stderr


def test_seed_is_logged_and_recorded(trained):
    work, _, run = trained
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["seed"] == 1 and cfg["train"]["run_name"] == "base"


def test_non_ascii_round_trip(tmp_path):
    text = "Ελληνικά 한국어 中文 кириллица 🙂 emoji\n" * 300
    (tmp_path / "u.txt").write_text(text, encoding="utf-8")
    run_ok("train", *TINY, "--data", "u.txt", "--run-name", "u", "--max-steps", 30, cwd=tmp_path)
    vocab = load_checkpoint(tmp_path / "checkpoints" / "u" / "best.pt")["vocab"]
    assert "🙂" in vocab and len(vocab) == len(set(text))
    out = run_ok("sample", "--prime", "한국🙂", "--length", 60, "--seed", 0, cwd=tmp_path).stdout
    assert out.startswith("한국🙂") and set(out) <= set(vocab) | {"\n"}


def test_crlf_policy_is_the_same_in_training_and_priming(tmp_path):
    (tmp_path / "w.txt").write_bytes(b"line one\r\nline two\rline three\n" * 300)
    run_ok("train", *TINY, "--data", "w.txt", "--run-name", "w", "--max-steps", 5, cwd=tmp_path)
    vocab = load_checkpoint(tmp_path / "checkpoints" / "w" / "best.pt")["vocab"]
    assert "\r" not in vocab and "\n" in vocab
    out = run_ok("sample", "--prime", "line\r\none", "--length", 5, cwd=tmp_path).stdout
    assert out.startswith("line\none")
