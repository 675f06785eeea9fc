"""``charlm sample`` in-process: option checks, edge cases, unknown characters, output files
and terminals that cannot show every character, stop strings, line limits and beam search."""


import pytest
from helpers import peak_memory_kib, run_cli, run_ok
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize("args, message", [
    (["--prime", "∮ unseen"], "the model never saw: '∮' (U+222E)"),
    (["--temperature", -0.5], "sample.temperature (--temperature) is -0.5; it must be >= 0"),
    (["--top-k", 0], "sample.top_k (--top-k) is 0; it must be >= 1"),
    (["--top-k", 10**6], "sample.top_k is 1000000 but the vocabulary has"),
    (["--top-p", 1.5], "sample.top_p (--top-p) is 1.5; it must be <= 1"),
    (["--length", -1], "sample.length (--length) is -1; it must be >= 0"),
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


def ended(text: str) -> str:
    """What the command prints for a sample's text: a final newline unless it ends one."""
    return text if text.endswith("\n") else text + "\n"


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stop=st.sampled_from([" ", "e", "in", "\n", "se", "\n\n", "):"]), seed=st.integers(0, 99))
def test_stop_ends_right_after_the_first_occurrence(trained, stop, seed):
    work, _, run = trained
    args = ["sample", run, "--length", 400, "--seed", seed, "--stop", stop]
    out = run_ok(*args, cwd=work).stdout
    stripped = run_ok(*args, "--strip-stop", cwd=work).stdout
    at = out.find(stop)
    if at == -1 or at + len(stop) > 400:  # it never came: the whole length
        assert len(out) in (400, 401) and stripped == out
        return
    text = out[:at + len(stop)]  # up to the first occurrence, which ends the sample
    assert out == ended(text) and stripped == ended(text[:at])


def test_line_limits_and_several_samples_each_ending_on_its_own(trained):
    work, _, run = trained
    one = run_ok("sample", run, "--length", 3000, "--seed", 4, "--max-lines", 3, cwd=work).stdout
    assert one.count("\n") == 3 and one.endswith("\n")
    three = run_ok("sample", run, "--length", 3000, "--seed", 4, "--max-lines", 2,
                   "--num-samples", 3, cwd=work).stdout
    assert three.count("\n") == 3 * 2 + 2  # two lines each, a blank line between samples
    two = run_ok("sample", run, "--length", 3000, "--seed", 4, "--stop", "e", "--num-samples",
                 2, cwd=work).stdout
    first, _, second = two.partition("e\n\n")  # each ends at its own first "e"
    assert "e" not in first and second.endswith("e\n") and second.count("e") == 1


def test_beam_width_1_is_greedy_and_wider_beams_come_ranked(trained):
    work, _, run = trained
    greedy = run_ok("sample", run, "--temperature", 0, "--length", 60, "--prime", "def ",
                    cwd=work)
    beam = run_ok("sample", run, "--beam-width", 1, "--length", 60, "--prime", "def ",
                  cwd=work)
    assert beam.stdout == greedy.stdout and "log-probability" in beam.stderr
    ranked = run_ok("sample", run, "--beam-width", 4, "--num-samples", 3, "--length", 40,
                    "--prime", "def ", cwd=work).stdout
    heads = [line for line in ranked.splitlines() if line.startswith("# beam ")]
    logprobs = [float(line.split("log-probability ")[1].split()[0]) for line in heads]
    assert len(heads) == 3 and logprobs == sorted(logprobs, reverse=True)
    assert ranked.count("\ndef ") == 3 and ranked.startswith("# beam 1 of 3: ")


@pytest.mark.parametrize("args, message", [
    (["--beam-width", 3, "--temperature", 0.5, "--top-k", 3],
     "--beam-width searches for the most probable text and draws nothing at random: drop "
     "--temperature, --top-k"),
    (["--beam-width", 2, "--num-samples", 3],
     "--num-samples 3 is more than --beam-width 2: beam search keeps 2 beams"),
    (["--length-penalty", 1], "--length-penalty ranks beams: it needs --beam-width"),
    (["--interactive", "--beam-width", 2], "--interactive samples; it cannot be combined with "
                                           "--beam-width"),
    (["--interactive", "--num-samples", 2], "--interactive writes one sample at a time: drop "
                                            "--num-samples"),
    (["--interactive", "--output", "x.txt"], "--interactive writes to the terminal: drop "
                                             "--output"),
    (["--interactive", "--prime", "a"], "--interactive reads its primes from the terminal"),
    (["--strip-stop"], "--strip-stop leaves out the stop string: it needs --stop STRING"),
    (["--stop", ""], "--stop '' is empty; give at least one character"),
    (["--stop", "a∮"], "--stop 'a∮' has 1 character(s) the model never saw: '∮' (U+222E), so "
                       "it could never occur; remove it"),
    (["--max-lines", 0], "Invalid value for '--max-lines'"),
    (["--beam-width", 0], "Invalid value for '--beam-width'"),
])
def test_options_that_make_no_sense_together(trained, args, message):
    work, _, run = trained
    proc = run_cli("sample", run, *args, cwd=work)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["--temperature", "1e-300"], ["--top-p", "1e-300"],
                                  ["--temperature", "1e-40", "--top-k", "2"]])
def test_tiny_sampling_values_act_as_greedy(trained, args):
    work, _, _ = trained
    greedy = run_ok("sample", "base", "--length", 40, "--temperature", 0, cwd=work).stdout
    assert run_ok("sample", "base", "--length", 40, *args, cwd=work).stdout == greedy


def test_sample_says_the_seed_it_drew(trained):
    work, _, _ = trained
    first = run_ok("sample", "base", "--length", 30, cwd=work)
    seed = first.stderr.split("--seed ")[1].split()[0]
    again = run_ok("sample", "base", "--length", 30, "--seed", seed, cwd=work)
    assert again.stdout == first.stdout


def test_ctrl_c_while_sampling_exits_130_without_a_traceback(trained, monkeypatch):
    import charlm.generation.sampling

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(charlm.generation.sampling, "generate", interrupted)
    result = run_cli("sample", "base", "--length", 50, cwd=trained[0])
    assert result.returncode == 130 and "Traceback" not in result.stderr
    assert "Aborted" not in result.stderr + result.stdout


@pytest.mark.slow
def test_a_long_prime_costs_no_more_memory_than_a_short_one(trained):
    """A 100,000-character prime (near the 128 KiB a command-line argument may hold) for 64
    samples: read once at batch 1 in chunks, not as 64 rows whose every position's scores
    are kept (before: about 3 GB here)."""
    work, corpus, run = trained
    prime = (corpus.read_text(encoding="utf-8") * 2)[:100_000]
    short, long = (peak_memory_kib("sample", run, "--prime", p, "--num-samples", 64,
                                   "--length", 5, "--seed", 1, cwd=work)
                   for p in (prime[:10], prime))                       # KiB
    assert long - short < 48 * 1024, (short, long)
