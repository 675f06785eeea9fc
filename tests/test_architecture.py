"""The architecture holds: the import contracts in pyproject.toml are kept, functions stay
short, and the inference commands never load the training code."""

import ast
import contextlib
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 50  # a function, from its def line to its last line (decorators excluded)
TRAINING = ("charlm.training",)


def test_import_contracts_are_kept():
    # use_cases.lint_imports is what `lint-imports` runs, without the command's logging set-up
    # (logging.config.dictConfig, which would disable charlm's loggers for later tests)
    import importlinter.api  # noqa: F401  (configures import-linter)
    from importlinter.application.use_cases import lint_imports

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        kept = lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None,
                            no_logo=True)
    report = out.getvalue()
    assert kept, report
    assert "Contracts: 5 kept, 0 broken." in report, report
    for name in ("charlm is layered", "training runs in order",
                 "inference commands never import the training code",
                 "config, errors and metrics need no torch"):
        assert any(line.startswith(name) and line.endswith("KEPT")
                   for line in report.splitlines()), report


def function_lengths() -> list[tuple[int, str]]:
    """``(lines, "path:line name")`` of every function and method in the package."""
    found = []
    for path in sorted((ROOT / "charlm").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                found.append((node.end_lineno - node.lineno + 1, where))
    return sorted(found, reverse=True)


def test_no_function_is_longer_than_50_lines():
    lengths = function_lengths()
    assert len(lengths) > 100  # the walk found the package
    longest = "\n".join(f"{n:4d}  {where}" for n, where in lengths[:5])
    assert lengths[0][0] <= MAX_LINES, f"functions over {MAX_LINES} lines; longest:\n{longest}"


@pytest.mark.slow
def test_inference_commands_never_import_training(trained):
    work, _, run = trained
    script = textwrap.dedent(f"""
        import sys
        from charlm.cli import main

        ckpt = {str(run / "best.pt")!r}
        for args in (["sample", ckpt, "--length", "20", "--seed", "0"],
                     ["sample", ckpt, "--length", "20", "--beam-width", "2"],
                     ["eval", ckpt, "--json"], ["eval", ckpt, "--dynamic", "--json"],
                     ["score", ckpt, "--text", "corpus.txt"], ["inspect", ckpt]):
            main(args, standalone_mode=False)
        print("LOADED", sorted(m for m in sys.modules
                               if any(m == t or m.startswith(t + ".") for t in {TRAINING!r})))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True,
                          text=True, encoding="utf-8", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"loss_nats"' in proc.stdout and "checkpoint:" in proc.stdout  # eval and inspect ran
    assert proc.stderr.count("loaded ") == 6, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
