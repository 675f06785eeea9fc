"""data.unit byte at the command line: any text, 256 ids, and sampling that never prints broken
UTF-8 (in-process)."""

import pytest
from helpers import CONFIGS, FIXTURES, run_cli, run_ok

KOREAN = FIXTURES / "korean.txt"


@pytest.mark.parametrize("unit", ["char", "byte"])
def test_train_and_sample_korean(tmp_path, unit):
    (tmp_path / "ko.txt").write_text(KOREAN.read_text(encoding="utf-8") * 12, encoding="utf-8")
    run_ok("train", "--config", CONFIGS / "tiny.yaml", "--data", "ko.txt", "--max-steps", 30,
           "--no-progress", "--seed", 1, "--run-name", unit, "--set", f"data.unit={unit}",
           cwd=tmp_path)
    out = run_ok("sample", unit, "--length", 300, "--seed", 2, "--prime", "오늘", cwd=tmp_path)
    text = out.stdout
    assert text.startswith("오늘") and len(text) > 50
    hangul = sum("\uac00" <= c <= "\ud7a3" for c in text)
    assert hangul > 20, text  # it learned to write Hangul syllables, not only spaces
    info = run_ok("inspect", unit, cwd=tmp_path).stdout
    assert ("vocab_size 256 (bytes" in info) == (unit == "byte")
    several = run_ok("sample", unit, "--length", 100, "--num-samples", 3, "--seed", 2,
                     cwd=tmp_path).stdout
    assert several.count("\n\n") >= 2
    score = run_ok("eval", unit, "--json", cwd=tmp_path).stdout
    assert '"loss_nats"' in score
    (tmp_path / "line.txt").write_text("오늘 날씨\n", encoding="utf-8")
    rows = run_ok("score", unit, "--text", "line.txt", "--per-char", cwd=tmp_path).stdout
    assert len(rows.splitlines()) == 1 + len("오늘 날씨\n".encode() if unit == "byte" else
                                             "오늘 날씨\n")
    assert ("\\xec" in rows) == (unit == "byte") and rows.startswith(f"offset\t{unit}\t")


def test_byte_model_refuses_visualize(tmp_path):
    (tmp_path / "ko.txt").write_text(KOREAN.read_text(encoding="utf-8") * 12, encoding="utf-8")
    run_ok("train", "--config", CONFIGS / "tiny.yaml", "--data", "ko.txt", "--max-steps", 2,
           "--no-progress", "--seed", 1, "--run-name", "b", "--set", "data.unit=byte",
           cwd=tmp_path)
    proc = run_cli("visualize", "b", cwd=tmp_path)
    assert proc.returncode == 1 and "reads bytes" in proc.stderr


def test_init_from_keeps_the_unit_even_when_given_the_default(tmp_path):
    (tmp_path / "ko.txt").write_text(KOREAN.read_text(encoding="utf-8") * 12, encoding="utf-8")
    base = ["--config", CONFIGS / "tiny.yaml", "--data", "ko.txt", "--no-progress", "--seed", 1]
    run_ok("train", *base, "--max-steps", 2, "--run-name", "b", "--set", "data.unit=byte",
           cwd=tmp_path)
    for clash in (["--set", "data.unit=char"], ["--hidden-size", 256]):  # both are defaults
        proc = run_cli("train", *base, "--max-steps", 2, "--init-from", "b", *clash,
                       cwd=tmp_path)
        assert proc.returncode == 1 and "--init-from keeps the checkpoint's" in proc.stderr
        assert ("data.unit 'byte' -> 'char'" in proc.stderr) or \
            ("model.hidden_size 32 -> 256" in proc.stderr), proc.stderr
