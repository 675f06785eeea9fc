"""``charlm train --resume`` in-process: overrides logged, frozen keys and other characters
refused, and an older checkpoint never resumed over a newer last.pt. (Exactness:
tests/test_resume.py.)"""


from helpers import TINY, TRAIN, run_cli, run_ok

from charlm.store.checkpoint import load_checkpoint


def test_resume_refuses_other_characters(trained, tmp_path):
    work, _, _ = trained
    other = tmp_path / "korean.txt"
    other.write_text("안녕하세요 여러분\n" * 2000, encoding="utf-8")
    proc = run_cli("train", "--resume", "base", "--data", other, cwd=work)
    assert proc.returncode == 1 and "vocabulary lacks" in proc.stderr and "'안'" in proc.stderr


def test_resume_refuses_frozen_keys_and_logs_overrides(trained):
    work, _, run = trained
    proc = run_cli("train", "--resume", "base", "--hidden-size", 64, cwd=work)
    assert proc.returncode == 1 and "cannot change model.hidden_size (32 -> 64)" in proc.stderr
    proc = run_ok("train", "--resume", str(run / "last.pt"), "--max-steps", 30, "--lr", 0.002,
                  cwd=work)
    assert "resume override: train.max_steps 20 -> 30" in proc.stderr
    assert "resume override: optim.lr 0.01 -> 0.002" in proc.stderr
    assert load_checkpoint(run / "last.pt")["state"]["step"] == 30


def test_resuming_an_older_checkpoint_never_overwrites_last(trained):
    work, corpus, _ = trained
    run_ok("train", *TINY, "--data", corpus, "--run-name", "older", "--max-steps", 40,
           "--stop-at-step", 35, "--set", "train.eval_interval=10", cwd=work)
    run = work / "checkpoints" / "older"
    before = (run / "last.pt").read_bytes()
    assert load_checkpoint(run / "best.pt")["state"]["step"] <= 30
    proc = run_cli("train", "--resume", run / "best.pt", cwd=work)
    assert proc.returncode == 1 and "would overwrite last.pt" in proc.stderr
    assert (run / "last.pt").read_bytes() == before


def test_resuming_a_loose_file_never_writes_beside_it(trained, tmp_path):
    """A .pt that is not a run's last.pt/best.pt would make its folder the run's folder and
    overwrite another model's last.pt there."""
    work, _, run = trained
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.pt").write_bytes((run / "last.pt").read_bytes())
    (loose / "last.pt").write_bytes(b"another model's checkpoint")
    proc = run_cli("train", "--resume", loose / "a.pt", cwd=work)
    assert proc.returncode == 1 and "--init-from" in proc.stderr
    assert "not a run's last.pt or best.pt" in proc.stderr
    assert sorted(p.name for p in loose.iterdir()) == ["a.pt", "last.pt"]
    assert (loose / "last.pt").read_bytes() == b"another model's checkpoint"


def test_resume_with_nothing_left_names_the_limit_reached(trained, tmp_path):
    work, corpus, _ = trained
    run_ok(*TRAIN, "--data", corpus, "--run-name", "ep", "--max-epochs", 1,
           "--set", "train.max_steps=null", "--set", "train.max_time=null", cwd=work)
    result = run_ok("train", "--resume", "ep", "--max-steps", 100000, cwd=work)
    assert "raise --max-epochs to continue" in result.stderr
    assert "Embedding dir" not in result.stdout + result.stderr
