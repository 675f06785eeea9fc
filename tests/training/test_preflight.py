"""What a run refuses before its first step, with nothing left behind."""


from helpers import TINY, TRAIN, one_line_error, run_cli, run_ok

import charlm.training.preflight as preflight


def test_a_bf16_lstm_on_a_cpu_without_bf16_kernels_is_refused_in_one_line(tmp_path, monkeypatch,
                                                                          corpus_file):
    monkeypatch.setattr(preflight, "cpu_has_bf16", lambda: False)
    proc = run_cli("train", *TINY, "--data", corpus_file, "--device", "cpu", "--cell", "lstm",
                   "--set", "train.precision=bf16", "--run-name", "bf", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "Error: train.precision bf16: this CPU has no bfloat16 kernels for the LSTM (oneDNN "
        "needs AVX-512 BF16 or AMX); use --set train.precision=fp32, another --cell, or a GPU")
    assert not (tmp_path / "checkpoints" / "bf").exists() and not (tmp_path / "runs").exists()


def test_values_a_later_stage_uses_are_checked_before_training(trained, tmp_path):
    work, corpus, _ = trained
    run_ok(*TRAIN, "--data", corpus, "--run-name", "cold", "--max-steps", 20,
           "--set", "sample.temperature=1e-40", cwd=work)      # its evaluations sample fine
    run_ok("sample", "cold", "--length", 10, cwd=work)
    one_line_error(run_cli(*TRAIN, "--data", corpus, "--set", "sample.top_k=9999", cwd=work),
                   "sample.top_k is 9999", "--set sample.top_k=N")
    (tmp_path / "s.txt").write_text("abc " * 300)
    one_line_error(run_cli(*TRAIN, "--data", tmp_path / "s.txt", "--set",
                           "train.log_gradflow_interval=5", "--set",
                           "train.gradflow_horizon=4000", cwd=work),
                   "train.gradflow_horizon 4000", "--set train.gradflow_horizon=K")


def test_a_changed_corpus_is_refused_on_resume(trained, tmp_path):
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
