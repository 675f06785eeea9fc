"""``charlm sample --interactive``: in-process with its input piped (commands, state kept or
reset), and once through a real pseudo-terminal (readline, Ctrl-D, Ctrl-C) as a process."""

import os
import select
import sys
import signal
import time

import pytest
from helpers import run_ok

N = 30  # characters per turn


def ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def greedy(work, run, prime: str, length: int) -> str:
    out = run_ok("sample", run, "--temperature", 0, "--prime", prime, "--length", length,
                 cwd=work).stdout
    return out[len(prime):len(prime) + length]


def test_keep_continues_and_reset_starts_again(trained):
    work, _, run = trained
    script = "/temp 0\n/keep\ndef \n\n/reset\ndef \n"
    out = run_ok("sample", run, "--interactive", "--length", N, cwd=work, input=script).stdout
    text = greedy(work, run, "def ", 2 * N)
    first, more = text[:N], text[N:]
    assert out == ("> temperature 0.0\n> keeping the state between turns\n"
                   f"> {ended(first)}> {ended(more)}> resetting the state between turns\n"
                   f"> {ended(first)}> \n")  # the empty line continued; Ctrl-D ends


def test_commands_are_checked_and_bad_primes_do_not_end_the_session(trained):
    work, _, run = trained
    script = "/temp -1\n/topk 0\n/topk 5\n/topp off\n/temp x\n/nope\n∮\n/quit\nnot read\n"
    proc = run_ok("sample", run, "--interactive", "--length", N, "--seed", 1, cwd=work,
                  input=script)
    out = proc.stdout
    assert "/temp takes a number: sample.temperature (/temp) is -1.0; it must be >= 0" in out
    assert "/topk takes a number or off: sample.top_k (/topk) is 0; it must be >= 1" in out
    assert "top_k 5\n" in out and "top_p off\n" in out
    assert "/temp takes a number, not 'x'" in out and "unknown command /nope" in out
    assert "the prime has 1 character(s) the model never saw: '∮' (U+222E); type the line " \
        "without them, or type /drop-unknown on to skip them" in proc.stderr
    assert out.endswith("> ") and "Traceback" not in proc.stderr  # /quit: nothing more read


def test_an_empty_line_continues_the_last_turn_in_the_default_reset_mode(trained):
    work, _, run = trained
    out = run_ok("sample", run, "--interactive", "--length", N, cwd=work,
                 input="/temp 0\ndef \n\n").stdout
    text = greedy(work, run, "def ", 2 * N)
    assert out == f"> temperature 0.0\n> {ended(text[:N])}> {ended(text[N:])}> \n"


def test_drop_unknown_can_be_turned_on_mid_session(trained):
    work, _, run = trained
    proc = run_ok("sample", run, "--interactive", "--length", N, cwd=work,
                  input="/temp 0\n/drop-unknown on\nde∮f \n/drop-unknown maybe\n")
    assert "skipping characters the model never saw\n" in proc.stdout
    assert f"> {ended(greedy(work, run, 'def ', N))}" in proc.stdout  # '∮' skipped
    assert "dropped from the prime: '∮' (U+222E)" in proc.stderr and "Error" not in proc.stderr
    assert "/drop-unknown takes on or off, not 'maybe'" in proc.stdout


PROMPT = b"\r\n> "  # the terminal shows "\n" as "\r\n"


def read_until(fd: int, marker: bytes | None, anywhere: bool = False,
               timeout_s: float = 60.0) -> bytes:
    """Read a pseudo-terminal until what it shows ends with ``marker`` (a prompt waiting for
    input; ``anywhere``: until it holds it), or until the child closes it (``marker`` None:
    only then); fail after the timeout."""
    seen, end = b"", time.monotonic() + timeout_s
    while marker is None or not (marker in seen if anywhere else seen.endswith(marker)):
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        assert ready, f"timed out waiting for {marker!r}; got {seen[-300:]!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal (Linux)
            break
        if not chunk:  # the same, elsewhere
            break
        seen += chunk
    return seen


def session(work, run, *keys: bytes, timeout_s: float = 60.0) -> tuple[int, bytes]:
    """Start ``charlm sample --interactive`` on a new pseudo-terminal, type each of ``keys``
    after the prompt it waits for, and return the exit status and everything shown."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling terminal, so Ctrl-C signals it
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as a shell starts it (see below)
        os.chdir(work)
        os.execv(sys.executable, [sys.executable, "-m", "charlm", "sample", str(run),
                                  "--interactive", "--length", str(N), "--seed", "1"])
    shown = read_until(fd, PROMPT)
    for key in keys:
        os.write(fd, key)
        shown += read_until(fd, PROMPT if key.endswith(b"\n") else b"\n", timeout_s=timeout_s)
    shown += read_until(fd, None)  # to the end
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown


@pytest.mark.slow
def test_a_terminal_session_ends_cleanly_on_ctrl_d_and_ctrl_c(trained):
    work, _, run = trained
    code, shown = session(work, run, b"def \n", b"/temp 0\n", b"\x04")  # Ctrl-D at a prompt
    assert code == 0 and b"temperature 0.0" in shown and b"Traceback" not in shown
    code, shown = session(work, run, b"\x03")  # Ctrl-C at the prompt
    assert code == 130 and b"Traceback" not in shown


@pytest.mark.slow
def test_ctrl_c_the_moment_the_prompt_shows_is_never_lost(trained):
    """CPython's readline left a Ctrl-C that came between showing the prompt and waiting for
    a key pending until the next key: 8 of 10 such presses did nothing. Five sessions, one
    press each, the instant the prompt shows."""
    work, _, run = trained
    for _ in range(5):
        code, shown = session(work, run, b"\x03", timeout_s=10.0)
        assert code == 130 and b"Traceback" not in shown


@pytest.mark.slow
def test_ctrl_c_mid_continuation_ends_cleanly(trained):
    import pty

    work, _, run = trained
    pid, fd = pty.fork()
    if pid == 0:
        # a process started with SIGINT ignored keeps ignoring it (Python then installs no
        # KeyboardInterrupt), and a pytest-xdist worker may hand that on: start as a shell does
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.chdir(work)
        os.execv(sys.executable, [sys.executable, "-m", "charlm", "sample", str(run),
                                  "--interactive", "--length", str(10**7)])
    read_until(fd, PROMPT)
    os.write(fd, b"def \n")
    shown = read_until(fd, b"def \r\n", anywhere=True)
    # the terminal echoes the line before the child reads it: wait until text streams, so
    # that Ctrl-C lands in the continuation (on a loaded machine it could land in input())
    while len(shown.partition(b"def \r\n")[2]) < 200:
        shown += read_until(fd, b"\n")
    os.write(fd, b"\x03")
    shown = read_until(fd, None)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130 and b"Traceback" not in shown
