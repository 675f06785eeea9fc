"""Every command that reads a checkpoint names it the same way: a .pt file, a run folder, a
run name, ``latest``, or nothing (the newest run under --checkpoint-dir), and says on stderr
which file it loaded."""

import os
import re
import shutil

import pytest
from conftest import stdlib_slice
from helpers import TINY, run_ok

from charlm.store.checkpoint import load_checkpoint

CKPTS = "ckpts"  # not the default folder, so --checkpoint-dir must be followed
COMMANDS = {  # command: (extra arguments, the file it prefers in a run folder)
    "sample": (["--length", 5], "best.pt"),
    "eval": (["--batch-size", 4], "best.pt"),
    "inspect": ([], "last.pt"),
    "visualize": (["--length", 20, "-o", "v.html"], "best.pt"),
    "gradflow": (["--horizon", 3, "--windows", 1, "-o", "gf"], "best.pt"),
}
FORMS = ["file", "run folder", "run name", "latest", "nothing"]
CASES = [(command, form) for command in COMMANDS for form in FORMS
         if (command, form) != ("gradflow", "nothing")]  # that one measures fresh models


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny run ``base``, trained in-process, beside an older copy ``old``:
    (workdir, base's folder)."""
    work = tmp_path_factory.mktemp("naming")
    (work / "corpus.txt").write_text(stdlib_slice(20_000), encoding="utf-8")
    run_ok("train", *TINY, "--data", "corpus.txt", "--run-name", "base", "--max-steps", 20,
           "--checkpoint-dir", CKPTS, cwd=work)
    base = work / CKPTS / "base"
    for path in shutil.copytree(base, work / CKPTS / "old").glob("*.pt"):
        os.utime(path, (1_000_000, 1_000_000))
    return work, base


def named(form: str, base) -> list:
    """The CHECKPOINT argument of each way to name base's checkpoint."""
    return {"file": [base / "best.pt"], "run folder": [base], "run name": ["base"],
            "latest": ["latest"], "nothing": []}[form]


@pytest.mark.parametrize("command, form", CASES)
def test_every_command_takes_every_name(runs, command, form):
    work, base = runs
    extra, prefers = COMMANDS[command]
    result = run_ok(command, *named(form, base), "--checkpoint-dir", CKPTS, *extra, cwd=work)
    loaded = re.findall(r"^loaded (.+) \(step (\d+)\)$", result.stderr, re.MULTILINE)
    want = base / ("best.pt" if form == "file" else prefers)
    assert len(loaded) == 1, result.stderr
    path, step = loaded[0]
    assert (work / path).resolve() == want.resolve()
    assert int(step) == load_checkpoint(want)["state"]["step"]


def test_gradflow_without_a_checkpoint_measures_fresh_models(runs):
    work, _ = runs
    result = run_ok("gradflow", "--checkpoint-dir", CKPTS, "--cell", "rnn", "--hidden-size", 4,
                    "--data", "corpus.txt", "--horizon", 3, "--windows", 1, "-o", "fresh",
                    cwd=work)
    assert "loaded" not in result.stderr and "rnn" in result.stdout


def test_a_dangling_link_in_one_run_does_not_hide_the_others_from_latest(runs, tmp_path,
                                                                         caplog):
    """One broken ``*.pt`` link in one run folder made ``latest`` fail for every run."""
    from charlm.store.names import find_checkpoint

    work, base = runs
    root = tmp_path / "ckpts"
    shutil.copytree(work / CKPTS, root)
    (root / "old" / "gone.pt").symlink_to(tmp_path / "nowhere.pt")
    assert find_checkpoint("latest", root) == root / "base" / "best.pt"
    assert "skipping" in caplog.text and "gone.pt" in caplog.text
    result = run_ok("sample", "latest", "--checkpoint-dir", root, "--length", 5, cwd=work)
    assert f"loaded {root / 'base' / 'best.pt'}" in result.stderr


def test_a_torn_last_pt_does_not_block_resuming_from_best_pt(runs, tmp_path):
    """A torn last.pt blocked --resume RUN/best.pt too, with no way forward named; now the
    error of --resume RUN names best.pt, and resuming from it works."""
    from helpers import one_line_error, run_cli

    work, base = runs
    run = tmp_path / "ckpts" / "torn"
    shutil.copytree(base, run)
    (run / "last.pt").write_bytes((base / "last.pt").read_bytes()[:3000])
    one_line_error(run_cli("train", "--resume", run, "--no-progress", cwd=work),
                   f"{run / 'last.pt'} is not a readable", f"{run / 'best.pt'}, instead")
    result = run_ok("train", "--resume", run / "best.pt", "--no-progress", "--max-steps", 25,
                    cwd=work)
    assert "cannot be read, so resuming from best.pt" in result.stderr
    assert load_checkpoint(run / "last.pt")["state"]["step"] == 25
