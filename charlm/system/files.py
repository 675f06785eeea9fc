"""Writing a file so that a failure never costs the file it replaces: every file charlm writes
(checkpoints, ``config.yaml``, samples, scores, pages, reports) goes through :func:`replacing`.

The text goes to a temporary file beside the target, named
``.<name>.<host>-<pid>-<token>.tmp``, which replaces the target when the block ends (a POSIX
rename is atomic, so a reader sees the old file or the new one, never half of one). A failure
removes the temporary file and leaves the old file whole. A writer killed outright (SIGKILL)
cannot clean up; its temporary file is removed the next time a file is written in that folder,
once its process is gone (or a day has passed, for one left by another host).

A file that is a charlm checkpoint is never replaced by anything but a checkpoint, and no
output is written into a folder that holds checkpoints (a run folder) except the run's own
files, so that ``--output`` pointed at ``best.pt`` or ``config.yaml`` by mistake cannot lose a
run (:func:`refuse_saved_state`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import socket
import time
import zipfile
from pathlib import Path
from typing import IO, Iterator

from charlm.errors import CharLMError, OutputError
from charlm.system.process import process_alive

logger = logging.getLogger(__name__)

STALE_AFTER_S = 86400.0  # a temporary file of another host is removed after a day
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]+\.tmp$")


def _host() -> str:
    """This machine's name, hashed to 8 hex digits (a name may hold dots and dashes)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temporary_name(path: Path) -> Path:
    """Where a write of ``path`` goes first."""
    return path.with_name(f".{path.name}.{_host()}-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def clean_dead_writers(folder: Path) -> list[Path]:
    """Remove the temporary files that writers which no longer run left in ``folder``.

    Returns:
        The files removed (each also logged).
    """
    removed, host = [], _host()
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
        match = _TMP.match(tmp.name)
        if match is None:
            continue
        try:
            old = time.time() - tmp.lstat().st_mtime > STALE_AFTER_S
            dead = match["host"] == host and not process_alive(int(match["pid"]))
            if old or dead:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    for tmp in removed:
        logger.info("removed %s, left by a write that did not finish", tmp)
    return removed


def is_checkpoint(path: Path) -> bool:
    """True for a file ``torch.save`` wrote: a zip archive holding a ``data.pkl``."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                return False
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl"
                       for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def holds_checkpoints(folder: Path) -> bool:
    """True if ``folder`` (or the folder it resolves to) holds a checkpoint: a run folder."""
    try:
        folders = {folder, folder.resolve()}
    except (OSError, RuntimeError):
        folders = {folder}
    return any(is_checkpoint(f) for d in folders if d.is_dir() for f in d.glob("*.pt"))


def refuse_saved_state(path: str | os.PathLike, advice: str,
                       error: type[CharLMError] = OutputError) -> None:
    """The one rule that keeps outputs off saved runs: refuse ``path`` if it is a checkpoint
    or lies in a folder that holds checkpoints (the run's ``config.yaml`` included).

    Raises:
        ``error``: one line naming the path and ``advice``.
    """
    path = Path(path)
    if is_checkpoint(path):
        raise error(f"{path} is a checkpoint; writing over it would lose the run: {advice}")
    if holds_checkpoints(path.parent):
        raise error(f"{path} is inside the run folder {path.parent}, which holds checkpoints; "
                    f"writing there could lose the run: {advice}")


def os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (itself, or one it was raised while handling), or None:
    ``torch.save`` reports a failed write as a RuntimeError raised from the OSError."""
    while exc is not None:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, binary: bool = False, durable: bool = False,
              checkpoint: bool = False, run_file: bool = False, keep_on_interrupt: bool = False,
              parents: bool = False, what: str = "", advice: str = "choose another --output",
              error: type[CharLMError] = OutputError) -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file that replaces it at the end.

    Devices, pipes and other files that are not regular files (``/dev/stdout``) are written
    directly.

    Args:
        binary: open in binary mode; otherwise UTF-8 text with LF line endings.
        durable: fsync the file and its folder, so the new file survives a power cut.
        checkpoint: what is written is a checkpoint, which may replace a checkpoint.
        run_file: what is written is the run's own file (``config.yaml``), which may be
            written beside its checkpoints.
        keep_on_interrupt: on Ctrl-C, keep what was written so far (a sample being streamed).
        parents: create the folders above ``path`` first.
        what: what the file is, for the error (``checkpoint``).
        advice: the option that avoids the failure, said in the error.
        error: the error class to raise.
    Raises:
        ``error``: one line naming the file, the reason and ``advice``, if the file cannot be
        written; or, unless ``checkpoint`` or ``run_file``, if it is a checkpoint or in a
        folder that holds checkpoints (:func:`refuse_saved_state`); the old file is intact.
    """
    path = Path(path)
    if not checkpoint and (not run_file or is_checkpoint(path)):
        refuse_saved_state(path, advice, error)
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        with _opened(path, binary, durable, keep_on_interrupt) as fh:
            yield fh
    except (OSError, RuntimeError) as exc:
        cause = os_error(exc)
        if cause is None:
            raise
        raise error(f"cannot write {what + ' ' if what else ''}{path}: "
                    f"{cause.strerror or cause}; {advice}") from None


@contextlib.contextmanager
def _opened(path: Path, binary: bool, durable: bool, keep_on_interrupt: bool) -> Iterator[IO]:
    """The temporary file behind :func:`replacing`, renamed over ``path`` at the end."""
    mode, text = ("xb", {}) if binary else ("x", {"encoding": "utf-8", "newline": "\n"})
    if path.exists() and not path.is_file():
        with open(path, mode.replace("x", "w"), **text) as fh:
            yield fh
        return
    clean_dead_writers(path.parent)
    tmp = temporary_name(path)
    try:
        # open(..., "x") rather than mkstemp: the file gets the umask's usual mode, not 0600
        with open(tmp, mode, **text) as fh:
            try:
                yield fh
            except KeyboardInterrupt:
                if keep_on_interrupt:
                    fh.close()
                    os.replace(tmp, path)
                raise
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
