"""The one writer of output files: a failed write keeps the old file, a checkpoint is never written
over, and temporary files of dead writers are cleaned."""

import errno
import os
import subprocess
import sys

from helpers import one_line_error, run_cli

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
