"""``charlm eval`` in-process: whole splits, batch sizes, run names, empty splits."""

import json

import pytest

from helpers import TINY, run_cli, run_ok


def test_eval_hardly_depends_on_batch_size_and_takes_run_names(trained):
    work, _, _ = trained
    one = json.loads(run_ok("eval", "base", "--batch-size", 1, "--json", cwd=work).stdout)
    many = json.loads(run_ok("eval", "base", "--batch-size", 64, "--json", cwd=work).stdout)
    assert one["chars"] == many["chars"]
    assert many["loss_nats"] == pytest.approx(one["loss_nats"], rel=0.01)
    assert run_ok("sample", "base", "--length", 5, cwd=work).returncode == 0


def test_empty_split_is_explained(tmp_path, trained):
    work, corpus, _ = trained
    run_ok("train", *TINY, "--data", corpus, "--run-name", "notest", "--max-steps", 3,
           "--set", "data.train_frac=0.9", "--set", "data.val_frac=0.1", cwd=work)
    proc = run_cli("eval", "notest", "--split", "test", cwd=work)
    assert proc.returncode == 1 and "split of" in proc.stderr and "is empty" in proc.stderr
