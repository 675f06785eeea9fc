"""``charlm inspect``, ``gradflow`` and ``visualize`` in-process, and the gradient-flow and
gate statistics a training run logs."""

import csv

from helpers import CONFIGS, run_cli, run_ok, scalars


def test_inspect_prints_what_the_checkpoint_holds(trained):
    work, _, run = trained
    out = run_ok("inspect", run / "best.pt", cwd=work).stdout
    for part in ("format 1", "torch", "step", "val loss", "parameters", "vocab_size",
                 "hidden_size: 32"):
        assert part in out


def test_gradflow_visualize_and_training_logs(tmp_path, corpus_file):
    out = run_ok("gradflow", "--cell", "rnn,lstm", "--data", corpus_file, "--horizon", 30,
                 "--windows", 4, "--hidden-size", 32, "--out", tmp_path / "gf", cwd=tmp_path)
    assert "rnn" in out.stdout and "wrote" in out.stdout
    rows = list(csv.reader((tmp_path / "gf" / "gradflow.csv").open()))
    assert rows[0] == ["k", "rnn", "lstm"] and len(rows) == 32
    assert (tmp_path / "gf" / "gradflow.png").read_bytes()[:4] == b"\x89PNG"
    assert [s for s, _ in scalars(tmp_path / "gf" / "lstm", "gradflow/grad_norm")] == \
        list(range(31))

    run_ok("train", "--config", CONFIGS / "tiny.yaml", "--data", corpus_file, "--run-name", "g",
           "--max-steps", 20, "--set", "train.log_gradflow_interval=10", "--set",
           "train.gradflow_horizon=20", cwd=tmp_path)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "runs" / "g"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/grad/flow_k000", "train/grad/flow_k020", "train/grad/clipped_frac",
            "val/gates/layer0_f_left"} <= tags
    assert "train/grad/norm_preclip" in events.Tags()["histograms"]

    run = tmp_path / "checkpoints" / "g" / "best.pt"
    gates = run_ok("inspect", run, "--gates", cwd=tmp_path).stdout
    assert "gate saturation" in gates and " f " in gates
    page = tmp_path / "v.html"
    shown = run_ok("visualize", run, "--out", page, "--length", 300, cwd=tmp_path).stdout
    assert "position in line" in shown and "wrote" in shown
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.count("<span") >= 300
    bad = run_cli("visualize", run, "--unit", "9:9", "--out", page, cwd=tmp_path)
    assert bad.returncode == 1 and "does not exist" in bad.stderr

    twin = tmp_path / "elsewhere" / "g"  # another run folder of the same name
    twin.mkdir(parents=True)
    (twin / "best.pt").write_bytes(run.read_bytes())
    run_ok("gradflow", run, twin / "best.pt", "--horizon", 5, "--windows", 2, "--output",
           tmp_path / "gf2", cwd=tmp_path)
    header = next(csv.reader((tmp_path / "gf2" / "gradflow.csv").open()))
    assert header == ["k", "g/best (lstm)", "g/best (lstm) #2"]
