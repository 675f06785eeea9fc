"""Where a study lives: its database (an embedded SQLite file by default, or any database
URL Optuna supports), opened so that several workers can share it, and the trials of workers
that died given back as failed.

* **Heartbeats.** Each running trial writes a heartbeat every :data:`HEARTBEAT_S` seconds; a
  trial whose heartbeat is older than :data:`GRACE_S` seconds belonged to a worker that died
  (``kill -9``, a power cut, a lost machine), and the next trial any worker starts marks it
  failed (``optuna.storages.fail_stale_trials``).
* **This machine's dead workers, at once.** A trial records the host and process that run it;
  a RUNNING trial of a process of this machine that no longer runs is marked failed when a
  tune opens the study, without waiting for the grace period. That is exact: the process is
  gone, so the trial can never finish.
* **Creating a study once.** Optuna creates its tables when it first opens a database; two
  processes doing that at once on a fresh database fail (both create the same table), so the
  opening is serialised by a lock file beside a SQLite database, and retried for a server.

The SQLite file is written by SQLite itself, not through :func:`charlm.system.files.replacing`
(a database is updated in place, under its own locks and journal).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Iterator

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from charlm.errors import TuneError
from charlm.system.process import process_alive

logger = logging.getLogger(__name__)

HEARTBEAT_S = 30     # a running trial's heartbeat period
GRACE_S = 120        # a heartbeat this old means the trial's worker is dead
SQLITE_WAIT_S = 60   # how long a SQLite writer waits for another's lock
OPEN_TRIES = 4       # attempts at opening a database server (creation races), 0.5 s apart and up
HOST_ATTR, PID_ATTR = "host", "pid"


def default_url(log_dir: str, study: str) -> str:
    """The embedded study of ``charlm tune --study NAME``: ``<log_dir>/tune/NAME.db``."""
    return f"sqlite:///{Path(log_dir) / 'tune' / f'{study}.db'}"


def shown(url: str) -> str:
    """``url`` as it may be printed: a password becomes ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url


def host_id() -> str:
    """This machine: its name and its boot's id (two containers of one name differ), hashed."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}-{hashlib.sha256(boot.encode()).hexdigest()[:8]}"


def may_hold_studies(url: str) -> bool:
    """False for a SQLite file that does not exist (opening it would make it)."""
    if not url.startswith("sqlite"):
        return True
    database = make_url(url).database
    return not database or database == ":memory:" or Path(database).is_file()


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Open (and on first use create) the database at ``url``, with heartbeats.

    Raises:
        TuneError: naming the URL (its password hidden) and ``--storage``, if the database
            cannot be reached or made, or its driver is not installed.
    """
    sqlite = url.startswith("sqlite")
    tries = 1 if sqlite else OPEN_TRIES
    if not sqlite:
        _connect(url)
    with _sqlite_lock(url) if sqlite else contextlib.nullcontext():
        for attempt in range(tries):
            try:
                with warnings.catch_warnings():  # heartbeats are marked experimental
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(
                        url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                        engine_kwargs={"connect_args": {"timeout": SQLITE_WAIT_S}} if sqlite
                        else {})
            except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
                error = exc
                if attempt + 1 < tries:
                    time.sleep(0.5 * 2 ** attempt)
            except ImportError as exc:
                raise TuneError(_no_driver(url, exc)) from None
    raise TuneError(_cannot_open(url, error))


def _connect(url: str) -> None:
    """Connect to a database server once, so that a server that cannot be reached is said
    at once (the opening after it is retried, for creation races only).

    Raises:
        TuneError: as :func:`open_storage`.
    """
    try:
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        raise TuneError(_cannot_open(url, exc)) from None
    except ImportError as exc:
        raise TuneError(_no_driver(url, exc)) from None


def _cannot_open(url: str, exc: BaseException) -> str:
    return (f"cannot open the study storage {shown(url)}: {_reason(exc)}; check --storage URL "
            f"(a database Optuna supports, e.g. postgresql+psycopg2://USER@HOST:PORT/DB)")


def _no_driver(url: str, exc: ImportError) -> str:
    return (f"cannot open the study storage {shown(url)}: its driver is not installed "
            f"({exc.name}; for PostgreSQL pip install psycopg2-binary); check --storage")


def _reason(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background link."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return (text[0] if text else type(inner).__name__).rstrip(".")


@contextlib.contextmanager
def _sqlite_lock(url: str) -> Iterator[None]:
    """Hold ``<db>.lock`` (an exclusive ``flock``) while a SQLite study database is opened,
    creating its folder first; in-memory databases and systems without ``fcntl`` need none.

    Raises:
        TuneError: if the folder cannot be made.
    """
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise TuneError(f"cannot create the study storage {path}: {exc.strerror or exc}; "
                        f"choose another --storage or --set train.log_dir=DIR") from None
    try:
        with contextlib.suppress(ImportError):
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        lock.close()  # closing releases the lock


def mark_worker(trial: optuna.Trial) -> None:
    """Record in ``trial`` the host and process that run it (:func:`fail_dead_trials`)."""
    trial.set_user_attr(HOST_ATTR, host_id())
    trial.set_user_attr(PID_ATTR, os.getpid())


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark failed the RUNNING trials of processes of this machine that are gone, and those
    whose heartbeat is older than :data:`GRACE_S`.

    Returns:
        The numbers of the trials marked failed (each also logged).
    """
    here, failed = host_id(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        pid = int(attrs.get(PID_ATTR, 0))
        if attrs.get(HOST_ATTR) == here and pid > 0 and not process_alive(pid):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
                failed.append(trial.number)
                logger.warning("trial %d: marked failed (its process %d on this machine is "
                               "gone)", trial.number, pid)
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    with warnings.catch_warnings():  # fail_stale_trials is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    stale = sorted({t.number for t in study.get_trials(deepcopy=False,
                                                       states=(TrialState.FAIL,))} - before)
    for number in stale:
        logger.warning("trial %d: marked failed (no heartbeat for %d s: its worker is gone)",
                       number, GRACE_S)
    return failed + stale
