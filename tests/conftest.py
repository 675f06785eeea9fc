"""Shared fixtures: small real corpora written into tmp_path (no network, no ../shared needed),
and one tiny trained run per test module."""

import os
from pathlib import Path

import pytest

from charlm.data.sources import pystdlib_files, read_text_file

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def pytest_addoption(parser):
    parser.addoption("--device", default=os.environ.get("CHARLM_TEST_DEVICE", "cpu"),
                     help="device the tests train and sample on: cpu (default), cuda, cuda:N "
                          "or mps; also CHARLM_TEST_DEVICE")


def pytest_configure(config):
    os.environ["CHARLM_TEST_DEVICE"] = config.getoption("--device")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # one worker per core: each runs torch on one thread, so that two workers' OpenMP
        # threads never wait for each other on the same cores (the test processes they start
        # inherit it). Tests that compare thread counts set them themselves.
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject's addopts): a worker per core for a run of the suite or of whole
    folders, none when single files or tests are named (starting workers costs more)."""
    named = [a for a in config.args if a.endswith(".py") or "::" in a]
    return 0 if named else max(1, min(os.cpu_count() or 1, 8))


def pytest_collection_modifyitems(config, items):
    """Keep each module's tests on one worker (its module fixtures, such as ``trained``, are
    then built once), and every process-starting (slow) test on one worker, so that no two
    of them compete for the cores with their own subprocesses (``--dist loadgroup``)."""
    for item in items:
        group = "processes" if item.get_closest_marker("slow") else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


def stdlib_slice(chars: int) -> str:
    """The first ``chars`` characters of the pystdlib corpus (real Python source)."""
    out, n = [], 0
    for path in pystdlib_files():
        text = read_text_file(path)
        out.append(text)
        n += len(text)
        if n >= chars:
            break
    return "".join(out)[:chars]


@pytest.fixture(scope="session")
def stdlib_text() -> str:
    """About 200k characters of standard-library source."""
    return stdlib_slice(200_000)


@pytest.fixture
def corpus_file(tmp_path, stdlib_text) -> Path:
    """A real-text corpus file: tiny-shakespeare where ../shared has it, else stdlib source."""
    path = tmp_path / "corpus.txt"
    if SHAKESPEARE.is_file():
        path.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:200_000], encoding="utf-8")
    else:
        path.write_text(stdlib_text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run on stdlib text, trained in-process once per test module:
    (workdir, corpus, run folder ``checkpoints/base``). Tests may add runs beside it."""
    from helpers import TINY, run_ok

    work = tmp_path_factory.mktemp("trained")
    corpus = work / "corpus.txt"
    corpus.write_text(stdlib_slice(60_000) + "# café naïve — ü\n" * 50, encoding="utf-8")
    run_ok("train", *TINY, "--data", corpus, "--run-name", "base", "--max-steps", 20, cwd=work)
    return work, corpus, work / "checkpoints" / "base"
