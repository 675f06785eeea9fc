"""``charlm score`` in-process: the summary, the per-character table, byte models and refusals."""

import json
import math

import pytest
from helpers import run_cli, run_ok


def test_summary_and_per_char_table_agree(trained, tmp_path):
    work, _, run = trained
    text = tmp_path / "t.txt"
    text.write_text("def f(x):\r\n    return '\\\\'  # café\n", encoding="utf-8")
    chars = len("def f(x):\n    return '\\\\'  # café\n")  # CRLF is read as LF
    summary = json.loads(run_ok("score", run, "--text", text, "--json", cwd=work).stdout)
    assert summary["chars"] == chars and summary["unit"] == "char"
    assert summary["bpc"] == pytest.approx(summary["loss_nats"] / math.log(2))
    proc = run_ok("score", run, "--text", text, "--per-char", cwd=work)
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert rows[0] == ["offset", "char", "nats", "bits"] and len(rows) == chars + 1
    assert [r[1] for r in rows[1:4]] == ["d", "e", "f"] and rows[10][1] == "\\n"
    assert rows[23][1] == "\\\\" and rows[-2][1] == "é"
    nats = [float(r[2]) for r in rows[1:]]
    assert sum(nats) / len(nats) == pytest.approx(summary["loss_nats"], abs=1e-4)
    assert "t.txt: loss" in proc.stderr and "bpc" in proc.stderr
    line = run_ok("score", run, "--text", text, cwd=work).stdout
    assert line.startswith(f"{text}: loss {summary['loss_nats']:.4f} nats/char")


@pytest.mark.parametrize("content, args, message", [
    ("x = '∮'\n", [], "has 1 character(s) the model never saw: '∮' (U+222E); a model cannot "
                      "score them: remove them from the text"),
    ("", [], "is empty; give a file with text to score"),
    ("abc", ["--per-char", "--json"], "--per-char prints a table and --json one object: "
                                      "choose one"),
])
def test_score_refusals(trained, tmp_path, content, args, message):
    work, _, run = trained
    (tmp_path / "t.txt").write_text(content, encoding="utf-8")
    proc = run_cli("score", run, "--text", tmp_path / "t.txt", *args, cwd=work)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("score", run, "--text", tmp_path / "missing.txt", cwd=work)
    assert proc.returncode == 2 and "Invalid value for '--text'" in proc.stderr


@pytest.mark.slow
def test_a_reader_that_goes_away_ends_the_command_quietly(trained, tmp_path):
    import subprocess
    import sys

    work, corpus, run = trained
    proc = subprocess.Popen([sys.executable, "-m", "charlm", "score", run, "--text", corpus,
                             "--per-char"], cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"offset\tchar\tnats\tbits\n"
    proc.stdout.close()  # as `| head -1` does: the rest of the table has nowhere to go
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and b"Error" not in err and b"Traceback" not in err
