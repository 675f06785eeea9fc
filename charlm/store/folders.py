"""A run's folders, claimed so that no two processes ever write the same run.

``checkpoints/<run>/`` holds the run's checkpoints and ``config.yaml``; ``runs/<run>/`` its
TensorBoard events. A run claims its checkpoint folder before it reads any data:

* a generated name (``<date>-<time>-<cell>``) is claimed with ``mkdir``, which is atomic, so
  two runs started in the same second get ``...-lstm`` and ``...-lstm-2``;
* the claim itself is a lock file, ``checkpoints/<run>/.lock``, created exclusively and holding
  the owner's host and pid. A second process that wants the same run while the owner lives is
  refused; a lock whose process is gone (a crash, ``kill -9``) is taken over, with a warning;
* a run that crashed before its first checkpoint left a folder without ``best.pt``/``last.pt``:
  starting the same ``--run-name`` again reuses it, and its old TensorBoard events are moved
  to ``runs/<run>/crashed-<time>/`` so the two runs' curves never mix.

Temporary files that a writer killed mid-save left in the folder (``.last.pt.*.tmp``, the size
of a checkpoint) are removed as soon as the run holds the lock, before the first step.

The lock is removed when the run ends, however it ends; a new run that fails before its first
checkpoint removes its ``config.yaml`` and TensorBoard events, and a fresh folder left without
anything in it (bad data, out of memory) is removed too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from charlm.config import RunConfig
from charlm.errors import CharLMError
from charlm.system.distributed import SINGLE, Dist
from charlm.system.files import clean_dead_writers
from charlm.system.process import process_alive

logger = logging.getLogger(__name__)

BEST, LAST = "best.pt", "last.pt"   # lowest val loss so far; the newest state of the run
CONFIG_FILE = "config.yaml"          # the resolved config, written before the first step
LOCK = ".lock"
CHECKPOINT_FILES = (BEST, LAST)


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes: its checkpoint folder and its TensorBoard folder."""

    name: str
    checkpoints: Path
    logs: Path


@contextlib.contextmanager
def claim_run(cfg: RunConfig, resume_dir: Path | None = None, dist: Dist = SINGLE
              ) -> Iterator[tuple[RunConfig, RunPaths]]:
    """Claim the run's folders for the duration of the block (module doc).

    Under distributed training rank 0 alone claims (creates and locks) them; every rank gets
    the run's final name and paths, or rank 0's error.

    Args:
        cfg: the run's config; ``train.run_name`` None means a generated name.
        resume_dir: the folder of the checkpoint a resumed run continues.
        dist: this process's place in a distributed job.
    Yields:
        ``(cfg, paths)``: the config with ``train.run_name`` set (the name may have gained a
        suffix to be unique) and the run's paths.
    Raises:
        CharLMError: if the run has checkpoints already (a new run), another live process
            holds it, or its folders cannot be written.
    """
    with contextlib.ExitStack() as stack:
        paths, error = None, None
        if dist.is_main:
            try:
                paths = stack.enter_context(_claimed(cfg, resume_dir))
            except CharLMError as exc:
                error = str(exc)
        name, error = dist.gather_objects((paths.name if paths else None, error))[0]
        if error:
            raise CharLMError(error)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_name=name))
        t = cfg.train
        yield cfg, paths or _paths(name, resume_dir or Path(t.checkpoint_dir) / name, t.log_dir)


@contextlib.contextmanager
def _claimed(cfg: RunConfig, resume_dir: Path | None) -> Iterator[RunPaths]:
    """Create, lock and prepare the folders (rank 0); unlock, and remove them if the run
    left them empty, at the end."""
    folder, fresh = _claim_folder(cfg, resume_dir)
    paths = _paths(folder.name, folder, cfg.train.log_dir)
    lock = _lock(folder, paths.name, resumed=resume_dir is not None)
    clean_dead_writers(folder)
    failed = True
    try:
        _prepare_logs(paths, resume_dir is not None)
        yield paths
        failed = False
    finally:
        if failed and resume_dir is None:
            _forget_unstarted(paths)
        lock.unlink(missing_ok=True)
        if fresh and not any(folder.iterdir()):  # a run that failed before writing anything
            folder.rmdir()
            with contextlib.suppress(OSError):  # its TensorBoard folder too, if still empty
                paths.logs.rmdir()


def _forget_unstarted(paths: RunPaths) -> None:
    """After a new run failed before its first checkpoint (out of memory at its first step,
    say), remove what it wrote, its ``config.yaml`` and TensorBoard events, so that no folder
    of a run that never started is left behind; a run with a checkpoint keeps everything."""
    if any((paths.checkpoints / f).exists() for f in CHECKPOINT_FILES):
        return
    with contextlib.suppress(OSError):
        (paths.checkpoints / CONFIG_FILE).unlink(missing_ok=True)
        for events in paths.logs.glob("events.out.tfevents.*"):  # older runs' are aside
            events.unlink()


def _paths(name: str, checkpoints: Path, log_dir: str) -> RunPaths:
    return RunPaths(name, checkpoints, Path(log_dir) / name)


def _claim_folder(cfg: RunConfig, resume_dir: Path | None) -> tuple[Path, bool]:
    """The checkpoint folder, created if new; True when this call created it."""
    t = cfg.train
    if resume_dir is not None:
        return resume_dir, False
    parent = _made(Path(t.checkpoint_dir), "choose another folder with --checkpoint-dir")
    if t.run_name is None:  # generated: the first free name, claimed by mkdir
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model.cell}"
        for n in range(1, 1000):
            folder = parent / (base if n == 1 else f"{base}-{n}")
            with contextlib.suppress(FileExistsError):
                folder.mkdir()
                return folder, True
    folder = parent / t.run_name
    taken = [f for f in CHECKPOINT_FILES if (folder / f).exists()]
    if taken:
        raise CharLMError(f"run '{t.run_name}' already has checkpoints in {folder}; continue it "
                          f"with --resume {t.run_name}, or choose another --run-name (nothing "
                          f"was overwritten)")
    fresh = not folder.exists()
    _made(folder, "choose another --run-name")  # the parent is writable: the name is at fault
    return folder, fresh


def _made(folder: Path, advice: str) -> Path:
    """``folder``, created if needed, after a test write.

    Raises:
        CharLMError: naming the folder, the reason and ``advice`` (an option to change).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".charlm-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CharLMError(f"cannot write to {folder}: {exc.strerror or exc}; {advice}"
                          ) from None
    return folder


def _lock(folder: Path, name: str, resumed: bool = False) -> Path:
    """Create ``folder/.lock`` exclusively; take over one whose process is gone. The advice
    of an error fits the command: a resumed run cannot change its folder or name.

    Raises:
        CharLMError: if a live process (or one on another host) holds the run.
    """
    lock = folder / LOCK
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(3):
        try:
            with open(lock, "x", encoding="utf-8") as fh:
                json.dump(me, fh)
            return lock
        except FileExistsError:
            _release_if_stale(lock, name, resumed)
        except OSError as exc:
            fix = ("make room there, or copy the run folder elsewhere and --resume the copy"
                   if resumed else "choose another folder with --checkpoint-dir")
            raise CharLMError(f"cannot write to {folder}: {exc.strerror or exc}; {fix}"
                              ) from None
    raise CharLMError(f"run '{name}' is being claimed by another process ({lock}); try again")


def _release_if_stale(lock: Path, name: str, resumed: bool = False) -> None:
    """Remove ``lock`` if the process that wrote it is gone, else refuse."""
    try:
        owner = json.loads(lock.read_text(encoding="utf-8"))
        host, pid = owner["host"], int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        host, pid = socket.gethostname(), -1  # half-written: its writer died mid-write
    if host != socket.gethostname():
        raise CharLMError(f"run '{name}' is held by process {pid} on {host} ({lock}); if that "
                          f"process is gone, delete the file, or choose another --run-name")
    if pid > 0 and process_alive(pid):
        other = ("; resume it when it has stopped" if resumed
                 else ", or choose another --run-name")
        raise CharLMError(f"run '{name}' is in use by process {pid} ({lock}); wait for it to "
                          f"finish{other}")
    logger.warning("run '%s': taking over the lock of process %s, which is gone (it crashed "
                   "or was killed)", name, pid)
    lock.unlink(missing_ok=True)


def _prepare_logs(paths: RunPaths, resumed: bool) -> None:
    """Create the TensorBoard folder; for a new run in a crashed run's folder, move the old
    events aside."""
    logs = _made(paths.logs, "choose another folder with --log-dir")
    old = sorted(logs.glob("events.out.tfevents.*"))
    if resumed or not old:
        return
    aside = logs / f"crashed-{time.strftime('%Y%m%d-%H%M%S', time.localtime(old[-1].stat().st_mtime))}"
    aside.mkdir(exist_ok=True)
    for f in old:
        f.rename(aside / f.name)
    logger.warning("run '%s' crashed before its first checkpoint earlier; its TensorBoard "
                   "events moved to %s", paths.name, aside)
