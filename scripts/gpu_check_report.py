"""The figures of ``scripts/gpu_check.sh``: one key figure per step, read back from the files
the step wrote, and the summary table.

    python scripts/gpu_check_report.py figure bench-fp32 OUT/steps   # one line
    python scripts/gpu_check_report.py scalar RUN_DIR time/eval_fraction OUT/steps/x.json
    python scripts/gpu_check_report.py summary OUT                    # summary.txt, .json

``OUT/steps.tsv`` holds one row per step as the shell script ran it: name, exit code (or
``skip``), seconds, the step's time limit in seconds, and a note. A figure that cannot be read
(the step failed before writing it) is shown as ``-`` rather than stopping the summary.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def machine(steps: Path) -> str:
    m = _json(steps / "machine.json")
    return (f"{m['gpu'] or 'no GPU'}, torch {m['torch']}, CUDA {m['cuda']}, "
            f"{m['cpu_count']} CPUs, python {m['python']}")


def tests(steps: Path) -> str:
    r = junit(steps / "tests.xml")
    return (f"{r['passed']} passed, {r['failed']} failed, {r['errors']} errors, "
            f"{r['skipped']} skipped of {r['tests']}")


def junit(path: Path) -> dict:
    """Counts, and the names of the failed and skipped tests (with the skip reasons)."""
    root = ET.parse(path).getroot()
    out = {"tests": 0, "failed": 0, "errors": 0, "skipped": 0, "failed_tests": [],
           "skipped_tests": []}
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        out["tests"] += 1
        for kind, key in (("failure", "failed"), ("error", "errors"), ("skipped", "skipped")):
            found = case.find(kind)
            if found is not None:
                out[key] += 1
                first = (found.get("message") or "").strip().splitlines()[:1]
                entry = f"{name}: {first[0] if first else kind}"
                out["skipped_tests" if kind == "skipped" else "failed_tests"].append(entry)
                break
    out["passed"] = out["tests"] - out["failed"] - out["errors"] - out["skipped"]
    return out


def bench(steps: Path, name: str) -> str:
    rows = _json(steps / f"{name}.json")["training"]
    low = min(rows, key=lambda r: r["ratio"])
    high = max(rows, key=lambda r: r["ratio"])
    return (f"charlm/bare ratio {low['ratio']:.3f} ({low['cell']} H{low['hidden_size']}) to "
            f"{high['ratio']:.3f}, {len(rows)} cell/size pairs; "
            f"{sum(r['ratio'] >= 0.95 for r in rows)} at >= 0.95")


def equal_params(steps: Path) -> str:
    rows = _json(steps / "equal-params.json")["training"]
    return "; ".join(f"{r['cell']} H{r['hidden_size']} {r['charlm_chars_per_s']:,.0f}"
                     for r in rows) + " chars/s"


def shakespeare(steps: Path) -> str:
    done = [line for line in (steps / "shakespeare.log").read_text(encoding="utf-8")
            .splitlines() if line.startswith("done:")]
    m = re.search(r"(\d+) steps in ([\d.]+) s.*val loss ([\d.]+)", done[-1])
    return f"val loss {m.group(3)} nats/char after {m.group(1)} steps, {m.group(2)} s"


def eval_fraction(steps: Path) -> str:
    r = _json(steps / "eval-fraction.json")
    return (f"evaluation {r['last']:.1%} of the run at step {r['last_step']} "
            f"(max {r['max']:.1%} over {r['points']} log points)")


def evaluation(steps: Path) -> str:
    r = _json(steps / "eval.json")
    return (f"{r['split']} {r['loss_nats']:.4f} nats/char, {r['bpc']:.4f} bpc over "
            f"{r['chars']:,} chars in {r['elapsed_s']:.1f} s")


def resume(steps: Path) -> str:
    parts = []
    for path in sorted(steps.glob("resume*.json")):
        r = _json(path)
        bad = [c["cell"] for c in r["cells"] if not c["exact"]]
        parts.append(f"{r['precision']} exact {len(r['cells']) - len(bad)}/{len(r['cells'])}"
                     + (f" (differ: {', '.join(bad)})" if bad else ""))
    return "; ".join(parts) + f" ({_json(steps / 'resume.json')['steps']} steps)"


def torchrun(steps: Path) -> str:
    done = [line for line in (steps / "torchrun.log").read_text(encoding="utf-8")
            .splitlines() if line.startswith("done:")]
    checks = _json(steps / "nccl.json")
    ok = sum(checks["checks"].values())
    backend = " ".join(filter(None, [checks["backend"], checks.get("nccl_version")]))
    return (f"charlm train under torchrun: {'done' if done else 'no done line'}; "
            f"{backend}: {ok}/{len(checks['checks'])} checks")


def sampling(steps: Path) -> str:
    model = _json(steps / "sampling.json")["models"][0]
    rates = ", ".join(f"batch {b} {r:,.0f}" for b, r in model["chars_per_s"].items())
    return f"{model['cell']} {model['num_layers']}x{model['hidden_size']}: {rates} chars/s"


def scan(steps: Path) -> str:
    ms = _json(steps / "scan.json")["ms_per_pass"]
    short = {k.split(" (")[0].replace("sequential, ", "seq "): v for k, v in ms.items()}
    return ", ".join(f"{k} {v:.2f} ms" for k, v in short.items())


FIGURES = {"machine": machine, "tests": tests, "bench-fp32": lambda s: bench(s, "bench-fp32"),
           "bench-bf16": lambda s: bench(s, "bench-bf16"), "shakespeare": shakespeare,
           "eval-fraction": eval_fraction, "eval": evaluation, "resume": resume,
           "torchrun": torchrun, "sampling": sampling, "scan": scan,
           "equal-params": equal_params}


def figure(name: str, steps: Path) -> str:
    """The step's key figure, or '-' when its files are missing or unreadable."""
    try:
        return FIGURES[name](steps)
    except (OSError, KeyError, IndexError, ValueError, AttributeError, TypeError,
            ET.ParseError):
        return "-"


def scalar(run_dir: str, tag: str, output: str) -> None:
    """Write the last and largest value of one TensorBoard scalar to JSON (tests/helpers.py
    reads tags the same way)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir)
    events.Reload()
    points = [(e.step, e.value) for e in events.Scalars(tag)]
    report = {"run": run_dir, "tag": tag, "points": len(points), "last_step": points[-1][0],
              "last": points[-1][1], "max": max(v for _, v in points), "values": points}
    Path(output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"{tag}: last {report['last']:.4f} at step {report['last_step']}, "
          f"max {report['max']:.4f}, {len(points)} points")


def summary(out: Path) -> None:
    """summary.txt (the table) and summary.json from OUT/steps.tsv and the step files."""
    steps = out / "steps"
    rows = [line.split("\t") for line in (out / "steps.tsv").read_text(encoding="utf-8")
            .splitlines() if line.strip()]
    table = [("step", "exit", "s", "limit", "key figure")]
    records = []
    for name, code, seconds, limit, note in rows:
        key = note if code == "skip" else figure(name, steps) + (f" [{note}]" if note else "")
        table.append((name, code, seconds, limit, key))
        records.append({"step": name, "exit": code, "seconds": seconds, "limit_s": limit,
                        "figure": key})
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in table]
    header = (out / "header.txt").read_text(encoding="utf-8") if (out / "header.txt").exists() \
        else ""
    report = {"header": header.strip().splitlines(), "steps": records}
    if (steps / "tests.xml").exists():
        try:
            report["tests"] = junit(steps / "tests.xml")
        except ET.ParseError:
            pass
    for kind in ("failed", "skipped"):  # the names, below the table
        names = report.get("tests", {}).get(f"{kind}_tests", [])
        lines += [f"{kind} test: {n}"[:300] for n in names[:30]]
        lines += [f"... and {len(names) - 30} more {kind} (summary.json)"] if len(names) > 30 \
            else []
    (out / "summary.txt").write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(header + "\n".join(lines))


def main(argv: list[str]) -> None:
    if argv[:1] == ["figure"] and len(argv) == 3:
        print(figure(argv[1], Path(argv[2])))
    elif argv[:1] == ["scalar"] and len(argv) == 4:
        scalar(*argv[1:])
    elif argv[:1] == ["summary"] and len(argv) == 2:
        summary(Path(argv[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
