"""One trial: its reports at tenths of its time, and a pruned trial's run ended cleanly with
its checkpoints kept."""

import pytest
import torch
from helpers import CONFIGS, DEVICE

from charlm.config import build_config
from charlm.training.loop import TrainState
from charlm.tune.plan import Plan
from charlm.tune.space import Param, Space

optuna = pytest.importorskip("optuna")
from charlm.tune.trial import TrialWatch, run_trial  # noqa: E402 (needs optuna)


def test_a_trial_reports_once_at_each_tenth_of_its_time():
    study = optuna.create_study()
    trial = study.ask()
    watch = TrialWatch(trial, trial_time_s=10.0)
    reported = []
    for elapsed in (0.5, 1.2, 1.5, 2.1, 4.7, 9.2, 9.9, 10.4):  # the clock at successive steps
        state = TrainState(step=int(elapsed * 10), elapsed_s=elapsed, last_val_loss=elapsed)
        if watch.eval_due(state):
            assert not watch.after_eval(state)
            reported.append(state.step)
        assert not watch.after_eval(state)  # an evaluation of train.eval_interval: no report
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {
        1: 1.2, 2: 2.1, 4: 4.7, 9: 9.2}  # point 3 was passed by one slow step; none at 10


def test_the_pruner_stops_a_losing_trial_at_its_report():
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1,
                                                                   n_warmup_steps=0))
    good = study.ask()
    for point in range(1, 10):
        good.report(1.0, point)
    study.tell(good, 1.0)
    watch = TrialWatch(study.ask(), trial_time_s=10.0)
    state = TrainState(step=30, elapsed_s=1.1, last_val_loss=3.0)
    assert watch.eval_due(state) and watch.after_eval(state)  # worse than the median: stop
    assert watch.pruned is state


def test_a_pruned_trial_ends_its_run_cleanly_with_its_checkpoints(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text[:60_000], encoding="utf-8")
    base = build_config(CONFIGS / "tiny.yaml", [
        f"data.corpus={tmp_path / 'c.txt'}", f"train.checkpoint_dir={tmp_path / 'ck'}",
        f"train.log_dir={tmp_path / 'runs'}", "train.max_steps=null", "train.progress=false",
        f"train.device={DEVICE}", f"data.cache_dir={tmp_path / 'cache'}"])
    plan = Plan(base, 20.0, Space((Param("model.hidden_size", "int", low=16, high=24),)), 1)
    # any val loss is above 0: the first report prunes the trial, two seconds in
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    from charlm.data.corpus import load_corpus

    val = load_corpus(base.data).splits["val"]
    study.optimize(lambda trial: run_trial(trial, plan, "s", val), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.value > 0
    assert list(trial.intermediate_values) == [1]
    run = tmp_path / "ck" / "tune" / "s" / "trial-0"
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["state"]["step"] == trial.user_attrs["steps"] > 0
    assert trial.user_attrs["seconds"] < 20.0  # stopped at its first report, not at the end
    assert trial.user_attrs["run"] == str(run) and (run / "best.pt").is_file()
    assert list((tmp_path / "runs" / "tune" / "s" / "trial-0").glob("events.out.*"))
