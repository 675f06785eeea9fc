"""Helpers shared by the tests that drive the real command line."""

import os
import subprocess
import sys
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def charlm(*args, cwd, check=True, env=None, **popen):
    """Run ``python -m charlm ARGS`` in ``cwd``; return the CompletedProcess."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8") | (env or {})
    proc = subprocess.run([sys.executable, "-m", "charlm", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=300, **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"charlm {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def start_charlm(*args, cwd):
    """Start ``python -m charlm ARGS`` in the background; return the Popen."""
    return subprocess.Popen([sys.executable, "-m", "charlm", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8")


def scalars(log_dir, tag):
    """``[(step, value)]`` of one TensorBoard scalar tag in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]
