"""The docs say only what the code does: every error row of docs/errors.md names a test that
exists, and every test path a doc page names exists."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def functions_of(path: Path) -> set[str]:
    return {node.name for node in ast.parse(path.read_text(encoding="utf-8")).body
            if isinstance(node, ast.FunctionDef)}


def test_every_error_row_names_a_test_that_exists():
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith(("| input", "|---"))]
    assert len(rows) > 50
    for row in rows:
        named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", row)
        assert named, f"a row of docs/errors.md names no test: {row[:80]}"
        for path, name in named:
            assert name in functions_of(ROOT / path), f"{path}::{name} does not exist"


def test_every_test_file_a_page_names_exists():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for path in re.findall(r"`(tests/[\w/]+\.py)", page.read_text(encoding="utf-8")):
            assert (ROOT / path).is_file(), f"{page.name} names {path}, which does not exist"
