"""The search space: the default space per core and per trial time, conditional keys drawn
under their condition, and a space that a study stores and reads back unchanged."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.config import RunConfig
from charlm.config.cells import cell_names
from charlm.tune.section import Section, build_space
from charlm.tune.space import Space

optuna = pytest.importorskip("optuna")

BIG = 10_000_000  # characters of a train split that fits every batch layout


def params_of(space):
    return {p.name: p for p in space.params}


def test_the_default_space_scales_with_the_core_and_the_trial_time():
    lstm = params_of(build_space(RunConfig(), Section(), [], None, 180, BIG))
    assert (lstm["model.hidden_size"].low, lstm["model.hidden_size"].high) == (128, 512)
    assert lstm["model.hidden_size"].log and lstm["model.cell"].value == "lstm"
    assert set(lstm) >= {"model.embedding_size", "model.dropout", "optim.lr",
                         "optim.warmup_steps", "train.batch_size", "train.seq_len",
                         "optim.grad_clip", "optim.weight_decay", "model.num_layers"}
    longer = params_of(build_space(RunConfig(), Section(), [], None, 180 * 16, BIG))
    assert longer["model.hidden_size"].high == 2 * 512  # 16 times the time, twice the width
    assert longer["model.dropout"].high > lstm["model.dropout"].high
    assert longer["optim.warmup_steps"].high > lstm["optim.warmup_steps"].high
    both = params_of(build_space(RunConfig(), Section(), [], "lstm,indrnn", 180, BIG))
    assert both["model.cell"].choices == ("lstm", "indrnn")
    assert both["model.hidden_size|model.cell=indrnn"].low > \
        both["model.hidden_size|model.cell=lstm"].low
    assert both["model.num_layers|model.cell=indrnn"].low == 2
    assert "model.hidden_size" not in both  # every trial's cell has a width of its own


@pytest.mark.parametrize("cells, drawn", [("mingru", {"mingru"}), ("gru,mingru", {"gru", "mingru"})])
def test_cells_choose_the_core_also_in_a_space_without_the_defaults(cells, drawn):
    # a section with `defaults: false` and no model.cell once left --cells unread: a
    # "mingru" study trained the base config's LSTM
    section = Section(entries={(None, "optim.lr"): {"low": 0.001, "high": 0.01}}, defaults=False)
    params = params_of(build_space(RunConfig(), section, [], cells, 180, BIG))
    cell = params["model.cell"]
    assert set(cell.choices if cell.kind == "choice" else [cell.value]) == drawn


def test_batch_layouts_that_do_not_fit_the_corpus_are_left_out():
    small = params_of(build_space(RunConfig(), Section(), [], None, 180, 25_000))
    assert small["train.batch_size"].choices == (16, 32, 64)  # 64 x 32 x 10 <= 25,000 ...
    assert small["train.seq_len"].choices == (32, 64, 128)  # ... and 16 x 128 x 10 too
    tiny = params_of(build_space(RunConfig(), Section(), [], None, 180, 1_000))
    assert tiny["train.batch_size"].value == 16 and tiny["train.seq_len"].value == 32


def test_conditional_keys_are_drawn_under_their_condition():
    space = build_space(RunConfig(), Section(), [], "lstm,indrnn", 180, BIG)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cells = set()
    for _ in range(20):
        trial = study.ask()
        values = space.suggest(trial)
        cell = values["model.cell"]
        cells.add(cell)
        width = [p for p in space.params if p.name == f"model.hidden_size|model.cell={cell}"][0]
        assert width.low <= values["model.hidden_size"] <= width.high
        assert f"model.hidden_size|model.cell={cell}" in trial.params
        assert not any(n.endswith(f"={other}") for n in trial.params
                       for other in {"lstm", "indrnn"} - {cell})
        study.tell(trial, 1.0)
    assert cells == {"lstm", "indrnn"}


@settings(deadline=None, max_examples=25)  # each space checks its values as the config does
@given(st.lists(st.sampled_from(cell_names()), min_size=1, max_size=4, unique=True),
       st.floats(min_value=5, max_value=7200), st.integers(min_value=1_000, max_value=BIG))
def test_a_space_reads_back_from_a_study_unchanged(cells, trial_time, train_chars):
    space = build_space(RunConfig(), Section(), [], ",".join(cells), trial_time, train_chars)
    stored = json.loads(json.dumps(space.to_dict()))  # what Optuna's user attributes keep
    assert Space.from_dict(stored) == space
