"""Helpers shared by the tests that drive the real command line: in-process (``run_cli``,
fast) or as a fresh ``python -m charlm`` process (``charlm``, ``start_charlm``: mark those
tests ``slow``)."""

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = ["--config", CONFIGS / "tiny.yaml", "--no-progress", "--seed", 1]
# The device the tests run charlm on: python -m pytest --device cuda (tests/conftest.py), or
# CHARLM_TEST_DEVICE. Every command that takes --device gets it unless the test gives one.
DEVICE = os.environ.get("CHARLM_TEST_DEVICE", "cpu")
TRAIN = ["train", *TINY]  # a seconds-long training on tests' tiny config
# A two-key search space for tests' tunes (tune_args writes it beside the test's files)
TINY_SPACE = """tune:
  defaults: false
  model:
    hidden_size: {low: 16, high: 48, log: true}
  optim:
    lr: {low: 0.003, high: 0.03, log: true}
"""


def tune_args(work, trial_time=2, *more):
    """``charlm tune`` on the tiny config with :data:`TINY_SPACE` (written into ``work``),
    seed 1, no progress bars."""
    (work / "space.yaml").write_text(TINY_SPACE, encoding="utf-8")
    return ["tune", "--config", CONFIGS / "tiny.yaml", "--config", work / "space.yaml",
            "--trial-time", trial_time, "--no-progress", "--seed", 1, *more]


def one_line_error(result, *parts):
    """The command failed with one ``Error:`` line holding every part, and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(line) == 1, result.stderr
    for part in parts:
        assert part in line[0], result.stderr
    return line[0]


_DEVICE_COMMANDS = {"train", "sample", "eval", "inspect", "visualize", "gradflow", "bench",
                    "tune"}


def with_device(args) -> list:
    """``args`` with ``--device DEVICE`` after the command, where it takes one."""
    args = [str(a) for a in args]
    if args and args[0] in _DEVICE_COMMANDS and "--device" not in args and \
            not {"--help", "-h"} & set(args):
        return [args[0], "--device", DEVICE, *args[1:]]
    return args


@contextlib.contextmanager
def _root_logging_kept():
    """Put the root logger's handlers and level back afterwards: the CLI calls
    ``logging.basicConfig(force=True)``, which would leave a handler on the runner's closed
    stderr (and drop pytest's capture handlers) for every later test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def run_cli(*args, cwd, env=None, charset="utf-8", input=None):
    """Run ``charlm ARGS`` in this process, in ``cwd``, through click's CliRunner (``input``:
    the text its stdin reads).

    Exceptions other than click's own propagate (a real bug shows as a traceback in the
    test). Returns an object with ``stdout``, ``stderr`` and ``returncode``, like the
    CompletedProcess of :func:`charlm`.
    """
    from click.testing import CliRunner

    from charlm.cli import main

    runner = CliRunner(charset=charset)
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with _root_logging_kept():
            result = runner.invoke(main, with_device(args), env=env, input=input,
                                   catch_exceptions=False)
    finally:
        os.chdir(before)
    return SimpleNamespace(stdout=result.stdout, stderr=result.stderr,
                           returncode=result.exit_code, args=args)


def run_ok(*args, cwd, **kw):
    """:func:`run_cli` that must succeed (status 0); the failure shows its stderr."""
    result = run_cli(*args, cwd=cwd, **kw)
    assert result.returncode == 0, f"charlm {args} failed ({result.returncode}):\n" \
                                   f"{result.stderr}"
    return result


def charlm(*args, cwd, check=True, env=None, **popen):
    """Run ``python -m charlm ARGS`` in ``cwd``; return the CompletedProcess."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8") | (env or {})
    proc = subprocess.run([sys.executable, "-m", "charlm", *with_device(args)], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=300, **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"charlm {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def peak_memory_kib(*args, cwd) -> int:
    """Peak resident memory (KiB) of one ``python -m charlm ARGS`` process, which must
    succeed: measured by a fresh parent whose only child it is (``RUSAGE_CHILDREN``)."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "charlm",
                           *map(str, with_device(args))], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"charlm {args} failed:\n{proc.stderr}"
    return int(proc.stdout)


def start_charlm(*args, cwd):
    """Start ``python -m charlm ARGS`` in the background; return the Popen."""
    return subprocess.Popen([sys.executable, "-m", "charlm", *with_device(args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8")


def scalars(log_dir, tag):
    """``[(step, value)]`` of one TensorBoard scalar tag in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]
