"""``charlm tune`` end to end, in this process: a seeded 3-trial tune whose trials are runs,
repeated draws, the report and JSON, a best config that ``charlm train`` takes as it is, and
bad input as one line."""

import json

import pytest
from helpers import one_line_error, run_cli, run_ok, tune_args

pytest.importorskip("optuna")

# 8 steps a trial: seconds each, whatever the machine (the trial time is its upper bound)
SHORT = ["--set", "train.max_steps=8"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, stdlib_text):
    """A finished 3-trial study ``s1`` (seed 1, no pruning) in a fresh folder."""
    work = tmp_path_factory.mktemp("tune")
    (work / "c.txt").write_text(stdlib_text[:60_000], encoding="utf-8")
    out = run_ok(*tune_args(work, 5, "--data", "c.txt", "--study", "s1", "--trials", 3,
                            "--pruner", "none", "--json", *SHORT), cwd=work)
    return work, json.loads(out.stdout), out.stderr


def test_a_seeded_tune_runs_its_trials_as_runs_and_repeats_its_draws(tuned):
    work, report, log = tuned
    trials = sorted(report["trials"], key=lambda t: t["number"])
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert {t["state"] for t in trials} == {"complete"} and all(t["value"] > 0 for t in trials)
    assert all(set(t["params"]) == {"model.hidden_size", "optim.lr"} for t in trials)
    assert all(16 <= t["params"]["model.hidden_size"] <= 48 for t in trials)
    for n in range(3):  # each trial an ordinary run: its checkpoints and TensorBoard events
        assert (work / "checkpoints" / "tune" / "s1" / f"trial-{n}" / "last.pt").is_file()
        assert list((work / "runs" / "tune" / "s1" / f"trial-{n}").glob("events.out.*"))
    assert "3 of 3 trials done" in log and "over the whole val split" in log
    again = json.loads(run_ok(*tune_args(work, 5, "--data", "c.txt", "--study", "s2",
                                         "--trials", 2, "--pruner", "none", "--json", *SHORT),
                              cwd=work).stdout)
    assert [t["params"] for t in sorted(again["trials"], key=lambda t: t["number"])] == \
        [t["params"] for t in trials[:2]]  # the same seed draws the same values
    other = json.loads(run_ok(*tune_args(work, 5, "--data", "c.txt", "--study", "s3",
                                         "--trials", 1, "--seed", 2, "--json", *SHORT),
                              cwd=work).stdout)
    assert other["trials"][0]["params"] != trials[0]["params"]


def test_the_report_lists_every_trial_and_runs_none(tuned):
    work, report, _ = tuned
    out = run_ok("tune", "--study", "s1", "--report", cwd=work).stdout
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["trial", "state", "val", "loss", "hidden"]
    assert len([ln for ln in lines if " complete " in ln]) == 3
    best = min(report["trials"], key=lambda t: t["value"])
    assert report["best"]["value"] == best["value"]
    assert f"best: trial {best['number']}, val loss {best['value']:.4f}" in out
    assert report["best"]["checkpoint"].endswith(f"trial-{best['number']}/last.pt")
    assert not (work / "checkpoints" / "tune" / "s1" / "trial-3").exists()


def test_the_best_config_trains_as_it_is(tuned):
    work, report, _ = tuned
    best = work / "runs" / "tune" / "s1.best.yaml"
    assert best.read_text(encoding="utf-8").startswith("# The best trial of study s1")
    run_ok("train", "--config", best, "--max-steps", 3, "--run-name", "again", cwd=work)
    saved = (work / "checkpoints" / "again" / "config.yaml").read_text(encoding="utf-8")
    assert f"hidden_size: {report['best']['config']['model']['hidden_size']}" in saved
    assert f"lr: {report['best']['config']['optim']['lr']}" in saved


def test_bad_tune_input_is_one_error_line(tuned, tmp_path):
    work = tuned[0]
    (work / "typo.yaml").write_text("tune:\n  model:\n    hiden_size: [16, 32]\n")
    (work / "swapped.yaml").write_text("tune:\n  model:\n    hidden_size: {low: 64, high: 16}\n")
    (work / "other.yaml").write_text("tune:\n  model:\n    hidden_size: {low: 8, high: 12}\n")
    base = tune_args(work, 5, "--data", "c.txt", "--trials", 1, *SHORT)
    cases = [
        ([*base, "--config", "typo.yaml", "--study", "t1"],
         ["unknown config key 'model.hiden_size' (tune: in typo.yaml)",
          "did you mean 'model.hidden_size'"]),
        ([*base, "--config", "swapped.yaml", "--study", "t2"],
         ["model.hidden_size (tune: in swapped.yaml) has low 64 above high 16"]),
        ([*base, "--study", "t3", "--storage", "postgresql+psycopg2://me:pw@127.0.0.1:1/db"],
         ["cannot open the study storage postgresql+psycopg2://me:***@127.0.0.1:1/db",
          "--storage"]),
        ([*base, "--config", "other.yaml", "--study", "s1"],
         ["the study was made with other settings: the search space",
          "model.hidden_size 16..48 (log) in the study", "or choose another --study"]),
        (tune_args(work, 5, "--data", "c.txt", "--study", "t4"), ["--trials N or --max-time"]),
        ([*base, "--study", "t5", "--max-time", 3], ["--max-time 3 is shorter than one trial "
                                                     "(--trial-time 5); give at least 5"]),
        (["tune", "--study", "s1", "--report", "--trials", 2], ["--report prints the study "
                                                               "and runs no trial"]),
        (["tune", "--study", "t6", "--report"],
         ["no study 't6' in sqlite:///runs/tune/t6.db; start it with charlm tune --study t6 "
          "--trial-time SECONDS"]),
        ([*base, "--study", "a/b"], ["--study 'a/b' must be a plain name"]),
    ]
    for args, parts in cases:
        one_line_error(run_cli(*args, cwd=work), *parts)
    assert len(json.loads(run_ok("tune", "--study", "s1", "--report", "--json",
                                 cwd=work).stdout)["trials"]) == 3  # s1 untouched
    assert not list((work / "runs" / "tune").glob("t*.db"))  # refused before any study


def test_trials_that_keep_failing_end_the_tune_and_the_runs_of_an_old_study_are_kept(
        tuned):
    work = tuned[0]
    huge = ["--set", "train.batch_size=4096", "--set", "train.seq_len=256"]  # > the corpus
    failing = run_cli(*tune_args(work, 5, "--data", "c.txt", "--study", "f", "--trials", 9,
                                 *huge), cwd=work)
    one_line_error(failing, "5 trials in a row failed, the last because the train split has",
                   "change the space (the tune: section of --config) or the base config")
    assert "trial 0 failed: the train split has" in failing.stderr
    old = work / "checkpoints" / "tune" / "gone" / "trial-0"
    old.mkdir(parents=True)
    one_line_error(run_cli(*tune_args(work, 5, "--data", "c.txt", "--study", "gone",
                                      "--trials", 1), cwd=work),
                   "holds the runs of an earlier study named 'gone' (its database is gone); "
                   "choose another --study, or move that folder")
    assert old.is_dir() and not list(old.iterdir())
    assert not (work / "runs" / "tune" / "gone.db").exists()


def test_without_optuna_the_command_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)  # import optuna fails
    one_line_error(run_cli("tune", "--study", "x", "--report", cwd=tmp_path),
                   "charlm tune needs Optuna", "pip install 'charlm[tune]'")
