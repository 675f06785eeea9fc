"""``charlm sample`` in-process: option checks, edge cases, unknown characters, output files
and terminals that cannot show every character."""

import pytest

from helpers import run_cli, run_ok


@pytest.mark.parametrize("args, message", [
    (["--prime", "∮ unseen"], "the model never saw: '∮' (U+222E)"),
    (["--temperature", -0.5], "temperature is -0.5; use 0 (greedy) or a positive value"),
    (["--top-k", 0], "top_k is 0; it must be between 1 and the vocabulary size"),
    (["--top-p", 1.5], "top_p is 1.5; it must be in (0, 1]"),
    (["--length", -1], "length is -1; it must be 0 or more"),
])
def test_sample_bad_options(trained, args, message):
    work, _, run = trained
    proc = run_cli("sample", run, *args, cwd=work)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr


def test_sample_edge_cases_and_encodings(trained, tmp_path):
    work, _, run = trained
    assert run_ok("sample", run, "--length", 0, cwd=work).stdout == "\n"
    dropped = run_ok("sample", run, "--prime", "def∮ ", "--drop-unknown", "--length", 5,
                     cwd=work)
    assert dropped.stdout.startswith("def ") and "dropped from the prime" in dropped.stderr
    greedy = run_ok("sample", run, "--temperature", 0, "--length", 40, cwd=work).stdout
    assert greedy == run_ok("sample", run, "--top-k", 1, "--length", 40, cwd=work).stdout
    out = tmp_path / "s.txt"
    run_ok("sample", run, "--prime", "é", "--length", 10, "--output", out, cwd=work)
    assert out.read_text(encoding="utf-8").startswith("é")
    ascii_out = run_ok("sample", run, "--prime", "é", "--length", 10, cwd=work,
                       charset="ascii")
    assert ascii_out.returncode == 0 and ascii_out.stdout.startswith("\\xe9")
