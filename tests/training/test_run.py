"""One training run end to end: every target used, the right figures at the end."""

from helpers import DEVICE, TINY, TRAIN, run_cli, run_ok


def test_an_epoch_of_a_run_counts_every_training_target(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text[:445], encoding="utf-8")
    out = run_ok(*TRAIN, "--data", "c.txt", "--batch-size", 4, "--seq-len", 50,
                 "--max-epochs", 20, "--set", "train.max_steps=null",
                 "--set", "train.max_time=null", cwd=tmp_path).stdout
    # 399 training pairs: 4 streams of 99 and 3 over; ceil(99/50) = 2 steps an epoch
    assert "done: run" in out and ", 40 steps" in out


def test_a_watch_adds_evaluations_and_stops_the_run_with_its_checkpoints(tmp_path, stdlib_text):
    import torch

    from charlm.config import build_config
    from charlm.training.reporting import EvalWatch
    from charlm.training.run import train_run

    (tmp_path / "c.txt").write_text(stdlib_text[:60_000], encoding="utf-8")
    cfg = build_config(TINY[1], [f"data.corpus={tmp_path / 'c.txt'}", "train.eval_interval=20",
                                 f"train.checkpoint_dir={tmp_path / 'ck'}",
                                 f"train.log_dir={tmp_path / 'runs'}", "train.run_name=w",
                                 "train.progress=false", "train.seed=1",
                                 "train.device=" + DEVICE])
    seen = []  # (step, val loss) of every evaluation the watch saw

    def after_eval(state):
        seen.append((state.step, state.last_val_loss))
        return state.step == 13  # the second watched evaluation stops the run

    result = train_run(cfg, watch=EvalWatch(eval_due=lambda s: s.step in (7, 13),
                                            after_eval=after_eval))
    assert [step for step, _ in seen] == [7, 13]  # before eval_interval's step 20
    assert all(loss > 0 for _, loss in seen)
    assert result.steps == 13 and result.early_stopped and not result.paused
    last = torch.load(tmp_path / "ck" / "w" / "last.pt", weights_only=True)
    assert last["state"]["step"] == 13 and (tmp_path / "ck" / "w" / "best.pt").is_file()


def test_a_stop_during_an_evaluation_ends_it_between_batches_and_saves(tmp_path, stdlib_text,
                                                                       monkeypatch):
    """SIGTERM during a long evaluation waited for the whole evaluation (30-57 s measured),
    past a container's grace period; now the evaluation ends at its next batch, last.pt is
    saved and the run exits 143, the evaluation left for after the resume."""
    import os
    import signal

    import charlm.training.reporting as reporting
    from charlm.store.checkpoint import load_checkpoint

    real, batches, calls = reporting.evaluate, [], []

    def evaluate_then_signal(model, *args, stop=None, **kw):
        calls.append(1)
        if len(calls) <= 6:  # the val curve's points at steps 0, 1, 2, 4, 8, 16
            return real(model, *args, stop=stop, **kw)

        def counted_stop():
            batches.append(1)
            if len(batches) == 3:  # SIGTERM arrives before the step-20 evaluation's third batch
                os.kill(os.getpid(), signal.SIGTERM)
            return stop()
        return real(model, *args, stop=counted_stop, **kw)

    monkeypatch.setattr(reporting, "evaluate", evaluate_then_signal)
    (tmp_path / "c.txt").write_text(stdlib_text[:100_000], encoding="utf-8")
    result = run_cli(*TRAIN, "--data", "c.txt", "--run-name", "r", "--max-steps", 40,
                     "--set", "train.eval_max_chars=20000", cwd=tmp_path)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert "evaluation left unfinished" in result.stderr
    assert len(batches) == 3  # the third batch was not scored: the evaluation ended there
    last = load_checkpoint(tmp_path / "checkpoints" / "r" / "last.pt")
    assert last["state"]["step"] == 20 and last["state"]["last_eval_step"] != 20


def test_a_stop_during_the_untrained_models_val_point_saves_step_0(tmp_path, stdlib_text,
                                                                    monkeypatch):
    """The val curve's first point scores the untrained model before step 1; a SIGTERM then
    used to save nothing while saying it saved last.pt (step 0 counted as just saved)."""
    import os
    import signal

    import charlm.training.reporting as reporting
    from charlm.store.checkpoint import load_checkpoint

    real = reporting.evaluate

    def evaluate_then_signal(model, *args, stop=None, **kw):
        def signalled():
            os.kill(os.getpid(), signal.SIGTERM)
            return stop()
        return real(model, *args, stop=signalled, **kw)

    monkeypatch.setattr(reporting, "evaluate", evaluate_then_signal)
    (tmp_path / "c.txt").write_text(stdlib_text[:100_000], encoding="utf-8")
    result = run_cli(*TRAIN, "--data", "c.txt", "--run-name", "r", cwd=tmp_path)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert load_checkpoint(tmp_path / "checkpoints" / "r" / "last.pt")["state"]["step"] == 0
