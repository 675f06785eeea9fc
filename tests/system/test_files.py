"""The one writer of output files: a failed write keeps the old file, a checkpoint is never written
over, and temporary files of dead writers are cleaned."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import one_line_error, run_cli, start_charlm

from charlm.errors import OutputError
from charlm.system.files import is_checkpoint, replacing, temporary_name


def test_other_writes_fail_in_one_line(trained, tmp_path):
    work, _, _ = trained
    (tmp_path / "f").write_text("x")
    for args in (["sample", "base", "--output", tmp_path / "f" / "s.txt"],
                 ["visualize", "base", "--output", tmp_path / "f" / "v.html"],
                 ["gradflow", "base", "--horizon", 5, "--windows", 1, "--output",
                  tmp_path / "f"]):
        one_line_error(run_cli(*args, cwd=work), "--output")


def test_a_failed_output_write_keeps_the_previous_file(trained, tmp_path, monkeypatch):
    work, _, _ = trained
    keep = tmp_path / "keep.txt"
    keep.write_text("precious\n")
    real_write = None

    class Full:
        """A file object whose writes fail as on a full disk once 100 characters are in."""

        def __init__(self, fh):
            self.fh, self.n = fh, 0

        def write(self, text):
            self.n += len(text)
            if self.n > 100:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(text)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    import charlm.system.files as files
    real_write = files._opened

    @__import__("contextlib").contextmanager
    def failing(path, *args):
        with real_write(path, *args) as fh:
            yield Full(fh)

    monkeypatch.setattr(files, "_opened", failing)
    one_line_error(run_cli("sample", "base", "--length", 2000, "--output", keep, cwd=work),
                   "No space left on device", "--output")
    assert keep.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_an_output_option_never_replaces_a_checkpoint(trained):
    work, _, run = trained
    before = (run / "best.pt").read_bytes()
    for args in (["sample", "base", "--length", 5, "-o", run / "best.pt"],
                 ["visualize", "base", "--length", 50, "-o", run / "last.pt"]):
        one_line_error(run_cli(*args, cwd=work), "is a checkpoint; writing over it would lose "
                       "the run: choose another --output")
    assert (run / "best.pt").read_bytes() == before
    assert is_checkpoint(run / "last.pt") and not is_checkpoint(work / "corpus.txt")


def test_temporary_files_of_dead_writers_are_removed_when_the_folder_is_next_written(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = temporary_name(tmp_path / "a.txt").name.replace(f"-{os.getpid()}-", f"-{dead}-")
    (tmp_path / left).write_text("half")
    mine = temporary_name(tmp_path / "b.txt")
    mine.write_text("being written")                      # a live writer's: kept
    (tmp_path / ".notes.tmp").write_text("not ours")       # not a name the writer makes: kept
    with replacing(tmp_path / "c.txt") as fh:
        fh.write("new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine.name, ".notes.tmp", "c.txt"])
    assert (tmp_path / "c.txt").read_text() == "new\n"


def test_no_output_option_writes_into_a_run_folder(trained, tmp_path):
    """A run's config.yaml or any new file beside its checkpoints is refused, through a link
    to the folder too, so that no output option can damage a run."""
    work, corpus, run = trained
    (tmp_path / "link").symlink_to(run)
    kept = {p.name: p.read_bytes() for p in run.iterdir()}
    for args in (["sample", "base", "--length", 5, "-o", run / "config.yaml"],
                 ["sample", "base", "--length", 5, "-o", tmp_path / "link" / "notes.txt"],
                 ["score", "base", "--text", corpus, "-o", run / "scores.tsv"],
                 ["visualize", "base", "--length", 50, "-o", run / "page.html"],
                 ["gradflow", "base", "--horizon", 5, "--windows", 1, "-o", run],
                 ["inspect", "base", "--projector", "-o", run]):
        one_line_error(run_cli(*args, cwd=work), "inside the run folder",
                       "which holds checkpoints", "choose another --output")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == kept


def test_the_runs_own_files_may_be_written_beside_its_checkpoints(trained):
    work, _, run = trained
    with replacing(run / ".probe.yaml", run_file=True) as fh:
        fh.write("ok\n")
    (run / ".probe.yaml").unlink()
    with pytest.raises(OutputError, match="is a checkpoint"):
        with replacing(run / "best.pt", run_file=True) as fh:
            fh.write("text over the weights")


def test_a_run_folder_is_cleaned_of_dead_writers_when_the_run_is_next_used(trained):
    """A checkpoint save killed outright (SIGKILL) leaves .last.pt.*.tmp; the next run that
    claims the folder removes it, even one that fails before it saves anything (here on text
    with characters the run never saw)."""
    work, _, run = trained
    other = work / "other.txt"
    other.write_text("日本語のテキスト\n" * 500, encoding="utf-8")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = run / temporary_name(run / "last.pt").name.replace(f"-{os.getpid()}-", f"-{dead}-")
    left.write_bytes(b"PK\x03\x04" + b"\0" * 4096)
    one_line_error(run_cli("train", "--resume", "base", "--data", other, "--no-progress",
                           cwd=work))
    assert not left.exists()
    assert not list(run.glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sample", "score"])
def test_sigterm_stops_a_writing_command_like_ctrl_c(trained, tmp_path, command):
    """SIGTERM (kill, a container's shutdown) ends a command that writes with 143 and no
    temporary file left; what sample wrote so far is kept, as on Ctrl-C."""
    work, corpus, _ = trained
    out = tmp_path / "out.txt"
    big = tmp_path / "big.txt"
    big.write_text(corpus.read_text(encoding="utf-8") * 40, encoding="utf-8")
    args = (["sample", "base", "--length", 10_000_000, "-o", out] if command == "sample" else
            ["score", "base", "--text", big, "--per-char", "-o", out])
    proc = start_charlm(*args, cwd=work)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.txt.*.tmp")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the command never began writing"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    assert not list(tmp_path.glob(".*.tmp"))
    if command == "sample":
        assert out.stat().st_size > 0
