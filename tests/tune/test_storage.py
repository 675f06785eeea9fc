"""A study's storage: the trials of this machine's dead workers failed at once and live ones
kept, and a database that cannot be opened said in one line with its password hidden."""

import os
import subprocess
import sys

import pytest

from charlm.errors import TuneError

optuna = pytest.importorskip("optuna")
from charlm.tune import storage  # noqa: E402 (needs optuna)


def running_trial(study, pid, host=None):
    """A RUNNING trial that says process ``pid`` of ``host`` (this machine) runs it."""
    trial = study.ask()
    trial.set_user_attr(storage.HOST_ATTR, host or storage.host_id())
    trial.set_user_attr(storage.PID_ATTR, pid)
    return trial.number


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # asked here, not by optimize()
def test_a_dead_workers_trial_is_failed_at_once_and_a_live_ones_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage.open_storage(url))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = running_trial(study, int(gone.stdout))          # its process has exited
    alive = running_trial(study, os.getpid())               # this process
    elsewhere = running_trial(study, int(gone.stdout), host="another-machine")
    assert storage.fail_dead_trials(study) == [dead]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {dead: "FAIL", alive: "RUNNING", elsewhere: "RUNNING"}  # its heartbeat decides


def test_a_storage_that_cannot_be_opened_is_one_line_with_its_password_hidden(tmp_path):
    pytest.importorskip("psycopg2")
    with pytest.raises(TuneError) as caught:
        storage.open_storage("postgresql+psycopg2://me:secret@127.0.0.1:1/db")
    message = str(caught.value)
    assert message.startswith("cannot open the study storage "
                              "postgresql+psycopg2://me:***@127.0.0.1:1/db: ")
    assert "secret" not in message and "\n" not in message and "--storage" in message
    (tmp_path / "afile").write_text("")
    with pytest.raises(TuneError, match="cannot create the study storage .*afile/s.db: "
                                        "File exists; choose another --storage"):
        storage.open_storage(f"sqlite:///{tmp_path / 'afile' / 's.db'}")


def test_a_missing_database_driver_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # import psycopg2 fails
    with pytest.raises(TuneError, match=r"its driver is not installed \(psycopg2; for "
                                        r"PostgreSQL pip install psycopg2-binary\)"):
        storage.open_storage("postgresql+psycopg2://me@127.0.0.1:1/db")
