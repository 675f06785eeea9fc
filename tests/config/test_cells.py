"""The cell table is the one list of cells: every entry builds, validates and is offered by
every command, and a new entry shows everywhere at once."""

import pytest
import torch
from helpers import TINY, run_cli, run_ok

from charlm.cli.train import train
from charlm.config import ModelConfig, build_config
from charlm.config.cells import CELLS, CellSpec, cell_names
from charlm.errors import ConfigError
from charlm.models.lm import create_model
from charlm.training.bench import train_flops_per_char

RELU = CellSpec("relu_rnn", (), (), ("h",), "Elman 1990 with ReLU (Le, Jaitly & Hinton "
                "2015)", "extra_cells:ReluRNNCore")


@pytest.fixture
def relu_cell(monkeypatch):
    """The table with one more entry, whose core lives in tests/extra_cells.py."""
    monkeypatch.setattr("charlm.config.cells.CELLS", {**CELLS, RELU.name: RELU})
    return RELU.name


@pytest.fixture
def bench_calls(monkeypatch):
    """Stub out the benchmark itself; record what ``charlm bench`` would run."""
    calls = []
    monkeypatch.setattr("charlm.training.bench.run", lambda ids, V, sizes, cells, *a, **k:
                        calls.append(cells))
    return calls


def cell_param():
    return next(p for p in train.params if p.name == "model__cell")


def offered(cell: str, cwd, bench_calls) -> None:
    """``cell`` is a ``train --cell`` choice, passes ``bench --cells`` and ``gradflow --cell``
    validation, and unknown names are refused listing it."""
    param = cell_param()
    assert cell in param.type.choices and param.type.convert(cell, param, None) == cell
    (cwd / "t.txt").write_text("some text to read\n" * 50, encoding="utf-8")
    run_ok("bench", "--cells", cell, "--data", "t.txt", "--sizes", 8, cwd=cwd)
    assert bench_calls[-1] == [cell]
    refused = run_cli("bench", "--cells", f"{cell},nope", "--data", "t.txt", cwd=cwd)
    assert refused.returncode == 1 and \
        f"takes a comma-separated list of {', '.join(cell_names())}" in refused.stderr
    assert cell in refused.stderr
    gf = run_ok("gradflow", "--cell", cell, "--data", "t.txt", "--hidden-size", 4,
                "--num-layers", 1, "--horizon", 3, "--windows", 1, "-o", "gf", cwd=cwd)
    assert cell in gf.stdout


@pytest.mark.parametrize("cell", list(CELLS))
def test_every_cell_builds_and_validates(cell):
    assert build_config(sets=[f"model.cell={cell}"]).model.cell == cell
    model = create_model(ModelConfig(cell=cell, embedding_size=4, hidden_size=8), 10)
    assert model.spec is CELLS[cell]
    logits, hidden = model(torch.randint(0, 10, (2, 5)))
    assert logits.shape == (2, 5, 10)
    assert len(hidden if isinstance(hidden, tuple) else (hidden,)) == len(CELLS[cell].state)
    matrices = sum(p.numel() for name, p in model.named_parameters()
                   if p.dim() == 2 and name != "embedding.weight")
    assert train_flops_per_char(model) == 3 * 2 * matrices


@pytest.mark.parametrize("cell", list(CELLS))
def test_every_cell_is_offered_by_the_commands(cell, tmp_path, bench_calls):
    offered(cell, tmp_path, bench_calls)


def test_unknown_cell_is_refused_naming_the_table():
    with pytest.raises(ConfigError, match="did you mean 'lstm'"):
        build_config(sets=["model.cell=lstn"])
    param = cell_param()
    with pytest.raises(Exception, match=", ".join(f"'{c}'" for c in cell_names())):
        param.type.convert("nope", param, None)


def test_a_new_entry_appears_everywhere_at_once(relu_cell, tmp_path, bench_calls):
    assert relu_cell in cell_names()
    assert build_config(sets=[f"model.cell={relu_cell}"]).model.cell == relu_cell
    with pytest.raises(ConfigError, match=f"did you mean '{relu_cell}'"):
        build_config(sets=["model.cell=relu_rmn"])
    model = create_model(ModelConfig(cell=relu_cell, hidden_size=8, num_layers=2), 10)
    assert type(model.core).__name__ == "ReluRNNCore" and model.core.nonlinearity == "relu"
    rnn = create_model(ModelConfig(cell="rnn", hidden_size=8, num_layers=2), 10)
    assert train_flops_per_char(model) == train_flops_per_char(rnn)
    assert relu_cell in run_ok("train", "--help", cwd=tmp_path).stdout
    offered(relu_cell, tmp_path, bench_calls)
    (tmp_path / "c.txt").write_text("the cat sat on the mat\n" * 100, encoding="utf-8")
    done = run_ok("train", *TINY, "--cell", relu_cell, "--data", "c.txt", "--max-steps", 3,
                  "--run-name", "relu", cwd=tmp_path)
    assert "done: run relu, 3 steps" in done.stdout and f"model: {relu_cell} 1 x 32" in done.stderr
    text = run_ok("sample", "relu", "--length", 20, "--seed", 0, cwd=tmp_path).stdout
    assert len(text) == 21
