"""``charlm score`` in-process: the summary, the per-character table, byte models and refusals."""

import json
import math

import pytest
from helpers import one_line_error, peak_memory_kib, run_cli, run_ok


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
    ("x = '∮'\n" * 3 + "y = '≠'", [], "2 character(s) the model never saw: '∮' (U+222E), "
                                      "'≠' (U+2260); a model"),
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


def test_standard_input_is_scored_as_the_file_is(trained):
    work, corpus, run = trained
    text = corpus.read_text(encoding="utf-8")[:5000]
    (work / "t.txt").write_text(text, encoding="utf-8")
    from_file = json.loads(run_ok("score", run, "--text", "t.txt", "--json", cwd=work).stdout)
    from_pipe = json.loads(run_ok("score", run, "--text", "-", "--json", cwd=work,
                                  input=text).stdout)
    assert from_pipe["chars"] == from_file["chars"] == 5000
    assert from_pipe["loss_nats"] == pytest.approx(from_file["loss_nats"], rel=1e-6)
    proc = run_cli("score", run, "--text", "-", cwd=work, input=text + "∮" + text)
    assert proc.returncode == 1 and "--text - has 1 character(s) the model never saw: '∮' " \
        "(U+222E) (the first within characters 0-10,001)" in proc.stderr


def test_a_text_in_many_pieces_scores_as_one_stream(trained, monkeypatch):
    """Pieces and chunks change where the forward passes cut the text, not a single score."""
    import charlm.data.sources as sources

    work, corpus, run = trained
    (work / "t.txt").write_text(corpus.read_text(encoding="utf-8")[:9000] + "é\r\n" * 40,
                                encoding="utf-8")
    whole = run_ok("score", run, "--text", "t.txt", "--per-char", cwd=work).stdout
    real = sources.text_ids
    monkeypatch.setattr(sources, "text_ids", lambda *a, **k: real(*a, **k, chunk_bytes=777))
    pieces = run_ok("score", run, "--text", "t.txt", "--per-char", cwd=work).stdout
    rows, rows_pieces = whole.splitlines(), pieces.splitlines()
    assert len(rows) == 9000 + 80 + 1 and [r.split("\t")[:2] for r in rows] == \
        [r.split("\t")[:2] for r in rows_pieces]
    assert [float(r.split("\t")[2]) for r in rows[1:]] == pytest.approx(
        [float(r.split("\t")[2]) for r in rows_pieces[1:]], abs=2e-4)


@pytest.mark.slow
def test_scoring_memory_does_not_grow_with_the_text(trained):
    """Peak memory of a whole ``charlm score`` process on 1.5 MB and on 6 MB of text: the
    text is read and scored in pieces (before: 28-170 bytes per character were kept)."""
    work, corpus, run = trained
    text = corpus.read_text(encoding="utf-8")
    for name, size in (("small.txt", 1_500_000), ("large.txt", 6_000_000)):
        (work / name).write_text((text * (size // len(text) + 1))[:size], encoding="utf-8")
    peak = {name: peak_memory_kib("score", run, "--text", name, cwd=work)
            for name in ("small.txt", "large.txt")}
    assert peak["large.txt"] - peak["small.txt"] < 48 * 1024, peak


@pytest.mark.slow
def test_a_closed_standard_input_is_a_one_line_error(trained):
    """`charlm score CKPT --text - <&-` (stdin closed, as under some daemons and cron jobs):
    Python sets sys.stdin to None, and reading it raised AttributeError with a traceback."""
    import subprocess
    import sys

    work, _, run = trained
    proc = subprocess.run([sys.executable, "-m", "charlm", "score", run, "--text", "-"],
                          cwd=work, capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: __import__("os").close(0))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: ")


def test_undecodable_text_is_one_line_naming_the_scores_own_options(trained, tmp_path):
    """score has no --set (and U+FFFD is no character a model saw): its decode error names
    --encoding alone; a codec's own refusal (UTF-16 without a byte-order mark) was a
    UnicodeError traceback."""
    work, _, run = trained
    (tmp_path / "bad.txt").write_bytes(b"def f():\n    return 1 \xff\n")
    proc = run_cli("score", run, "--text", tmp_path / "bad.txt", cwd=work)
    one_line_error(proc, "is not valid utf-8: byte 0xff", "pass --encoding NAME")
    assert "data.errors" not in proc.stderr
    (tmp_path / "t16.txt").write_bytes("def f():\n".encode("utf-16-le"))
    one_line_error(run_cli("score", run, "--text", tmp_path / "t16.txt", "--encoding",
                           "utf-16", cwd=work),
                   "cannot be read as utf-16: UTF-16 stream does not start with BOM",
                   "--encoding")
