"""The ``tune:`` section: read with the config's YAML reader, merged over the default space key
by key, and every bad entry refused in one line naming the key and the file."""

import pytest

from charlm.config import RunConfig, build_config
from charlm.errors import ConfigError, OptionError
from charlm.tune.section import build_space, read_sections

BIG = 10_000_000


def space_of(tmp_path, text, fixed=(), cells=None, base=None):
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return build_space(base or RunConfig(), read_sections([path]), fixed, cells, 180, BIG)


def test_a_tune_section_overrides_the_default_space_key_by_key(tmp_path):
    space = space_of(tmp_path, """
tune:
  model:
    dropout: 0.1
    embedding_size: null
    hidden_size: {low: 64, high: 192, step: 32}
  optim:
    lr: {low: 1e-3, high: 1e-2, log: true}
  train:
    seq_len: [64, 128]
  model.cell=gru:
    model:
      hidden_size: {low: 96, high: 320, log: true}
model:
  cell: gru
""", cells="lstm,gru")
    by_name = {p.name: p for p in space.params}
    assert by_name["model.dropout"].kind == "fixed" and by_name["model.dropout"].value == 0.1
    assert "model.embedding_size" not in by_name          # null: the base config's value
    assert by_name["optim.lr"].low == 0.001 and by_name["optim.lr"].log  # "1e-3" read as 0.001
    assert by_name["model.hidden_size"].step == 32          # replaces every default width ...
    assert "model.hidden_size|model.cell=lstm" not in by_name
    assert by_name["model.hidden_size|model.cell=gru"].high == 320  # ... the block its own
    assert by_name["train.seq_len"].choices == (64, 128)
    assert "optim.grad_clip" in by_name and "model.num_layers|model.cell=gru" in by_name
    assert space.searched()[:2] == ["model.cell", "model.hidden_size"]  # schema order


def test_defaults_false_searches_only_the_section_and_set_fixes_a_key(tmp_path):
    only = space_of(tmp_path, "tune:\n  defaults: false\n  optim:\n    lr: [0.002, 0.004]\n")
    assert [p.name for p in only.params] == ["optim.lr"]
    fixed = space_of(tmp_path, "tune:\n  optim:\n    lr: [0.002, 0.004]\n",
                     fixed=["model.hidden_size", "train.batch_size"])
    assert not {"model.hidden_size", "train.batch_size"} & set(fixed.keys())


@pytest.mark.parametrize("text, parts", [
    ("tune:\n  model:\n    hiden_size: [64]\n",
     ["unknown config key 'model.hiden_size' (tune: in ", "did you mean 'model.hidden_size'"]),
    ("tune:\n  modle:\n    hidden_size: [64]\n",
     ["unknown key 'modle' (tune: in ", "did you mean 'model'", "takes model, optim, train"]),
    ("tune:\n  model:\n    hidden_size: {low: 512, high: 128}\n",
     ["model.hidden_size (tune: in ", "has low 512 above high 128; give low <= high"]),
    ("tune:\n  optim:\n    weight_decay: {low: 0, high: 0.1, log: true}\n",
     ["optim.weight_decay (tune: in ", "a log range needs low > 0"]),
    ("tune:\n  optim:\n    lr: {lo: 0.001, high: 0.01}\n",
     ["has unknown field 'lo' (did you mean 'low'?)", "takes low, high, log and step"]),
    ("tune:\n  model:\n    hidden_size: {low: 64}\n", ["needs both low and high"]),
    ("tune:\n  model:\n    dropout: {low: 0.0, high: 1.5}\n",
     ["model.dropout (tune: in ", "is 1.5; it must be <= 0.99"]),
    ("tune:\n  model:\n    hidden_size: {low: 0.5, high: 64}\n", ["must be int, got 0.5"]),
    ("tune:\n  model:\n    cell: {low: lstm, high: gru}\n", ["takes no range", "choices"]),
    ("tune:\n  model:\n    cell: [lstm, lstm]\n", ["gives a choice twice"]),
    ("tune:\n  model:\n    cell: [lstm, nope]\n", ["model.cell (tune: in ", "'nope'"]),
    ("tune:\n  train:\n    max_time: [60, 120]\n",
     ["train.max_time (tune: in ", "cannot be searched", "--trial-time"]),
    ("tune:\n  model.cell=gru:\n    model:\n      hidden_size: [64]\n",
     ["the condition model.cell=gru (tune: in ", "can never hold"]),
    ("tune:\n  model:\n    cell: [lstm, rnn]\n  model.cell=gru:\n    model:\n      dropout: 0.1\n",
     ["can never hold: model.cell is drawn among lstm, rnn"]),
    ("tune:\n  defaults: maybe\n", ["defaults (tune: in ", "must be true or false"]),
    ("tune:\n  model: [1, 2]\n", ["model (tune: in ", "must be a mapping of keys"]),
])
def test_bad_entries_are_one_line_naming_the_key_and_the_file(tmp_path, text, parts):
    with pytest.raises(ConfigError) as caught:
        space_of(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message and "space.yaml" in message
    for part in parts:
        assert part in message, message


def test_a_key_fixed_and_searched_at_once_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="model.hidden_size is fixed by --set and given by "
                                          "the tune: in .*space.yaml; drop one"):
        space_of(tmp_path, "tune:\n  model:\n    hidden_size: [64]\n",
                 fixed=["model.hidden_size"])
    with pytest.raises(ConfigError, match="--cells and the tune: in .* both choose model.cell"):
        space_of(tmp_path, "tune:\n  model:\n    cell: [lstm, gru]\n", cells="lstm,rnn")
    with pytest.raises(OptionError, match="unknown cell"):
        space_of(tmp_path, "", cells="lstm,nope")


def test_a_range_that_contradicts_the_base_config_is_refused(tmp_path):
    base = build_config(options={"optim.min_lr": 0.002})
    with pytest.raises(ConfigError, match=r"optim.min_lr \(0.002\) is above optim.lr \(0.001\)"):
        space_of(tmp_path, "tune:\n  optim:\n    lr: {low: 0.001, high: 0.01}\n", base=base)
