"""How training shares a CPU: steps per second alone, beside `charlm sample` in a loop, and
beside the test suite, for OpenMP settings (the spin count, the wait policy, one thread).

    python scripts/fair_threads.py --data ../shared/data/tinyshakespeare.txt --seconds 60

Each setting's environment is given to every process (the training and its neighbour both
run charlm); its options to the training. A
training is `configs/shakespeare.yaml` with evaluation, samples and gate statistics off, for
``--seconds``; its step count is read from the `done:` line. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name: (environment for every process, charlm train options)
    "libgomp default, fixed threads (before)": ({"GOMP_SPINCOUNT": "300000"},
                                                ["--set", "train.share_cpu=false"]),
    "spin 30000": ({"GOMP_SPINCOUNT": "30000"}, ["--set", "train.share_cpu=false"]),
    "spin 3000": ({"GOMP_SPINCOUNT": "3000"}, ["--set", "train.share_cpu=false"]),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"},
                ["--set", "train.share_cpu=false"]),
    "1 thread": ({"OMP_NUM_THREADS": "1"}, []),
    "charlm's default (spin 3000, share_cpu)": ({}, []),
}


def charlm(*args) -> list[str]:
    return [sys.executable, "-m", "charlm", *map(str, args)]


def train_steps(data: str, seconds: float, env: dict, work: Path, name: str,
                options: list[str]) -> int:
    """Steps one training makes in ``seconds`` (evaluation off)."""
    out = subprocess.run(charlm(
        "-q", "train", "--config", ROOT / "configs" / "shakespeare.yaml", "--data", data,
        "--max-time", seconds, "--run-name", name, "--seed", 1, "--no-progress",
        "--set", "train.eval_interval=1000000", "--set", "train.sample_length=0",
        "--set", "train.log_gates=false", *options), cwd=work, env=env, capture_output=True, text=True,
        check=True).stdout
    return int(re.search(r", (\d+) steps in", out).group(1))


def neighbour(kind: str, env: dict, work: Path) -> subprocess.Popen:
    """A busy torch process beside the training: sampling in a loop, or the fast tests."""
    if kind == "sample":
        loop = f"while true; do {' '.join(charlm('-q', 'sample', 'tiny', '--length', 3000))} " \
               f"> /dev/null; done"
    else:
        loop = f"while true; do {sys.executable} -m pytest -q -m 'not slow' -x " \
               f"-p no:cacheprovider {ROOT / 'tests'} > /dev/null 2>&1; done"
    return subprocess.Popen(["bash", "-c", loop], cwd=work, env=env, start_new_session=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tinyshakespeare")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="charlm-threads-"))
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores; {args.seconds:g}-s trainings")
    subprocess.run(charlm("-q", "train", "--config", ROOT / "configs" / "tiny.yaml", "--data",
                          args.data, "--run-name", "tiny", "--max-steps", 20), cwd=work,
                   check=True, capture_output=True)
    for i, name in enumerate(args.settings):
        env, options = SETTINGS[name]
        env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | env
        row = [train_steps(args.data, args.seconds, env, work, f"solo-{i}", options)]
        for kind in ("sample", "tests"):
            other = neighbour(kind, env, work)
            time.sleep(3)
            try:
                row.append(train_steps(args.data, args.seconds, env, work, f"{kind}-{i}",
                                       options))
            finally:
                os.killpg(other.pid, 15)
                other.wait()
        print(f"{name:>30}: alone {row[0]:5d} steps; beside sampling {row[1]:5d} "
              f"({row[1] / row[0]:.0%}); beside the tests {row[2]:5d} ({row[2] / row[0]:.0%})",
              flush=True)


if __name__ == "__main__":
    main()
