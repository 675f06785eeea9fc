"""The run configuration: defaults, shipped files, precedence, validation and docs."""


import pytest
from helpers import CONFIGS, TINY, one_line_error, run_cli, run_ok

from charlm.config import (
    ConfigError,
    RunConfig,
    build_config,
    describe_keys,
    dump_yaml,
    load_yaml,
)
from charlm.config.cells import CELLS


def test_default_yaml_equals_builtin_defaults():
    assert build_config(CONFIGS / "default.yaml") == RunConfig()


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = build_config(CONFIGS / f"{name}.yaml")
    assert cfg.model.cell in CELLS


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "tune").glob("*.yaml")))
def test_shipped_tune_spaces_build(name):
    optuna = pytest.importorskip("optuna")  # noqa: F841 (the space's params are Optuna's)
    from charlm.tune.section import build_space, read_sections

    space = build_space(build_config(CONFIGS / "shakespeare-2x256.yaml"),
                        read_sections([CONFIGS / "tune" / f"{name}.yaml"]), [], "lstm", 180,
                        1_000_000)
    assert {p.key for p in space.params} >= {"model.hidden_size", "optim.lr"}


def test_precedence_defaults_yaml_set_option(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  hidden_size: 100\n  num_layers: 3\noptim:\n  lr: 1e-3\n")
    cfg = build_config(f, ["model.hidden_size=200", "model.cell=gru"],
                       {"model.cell": "rnn", "train.seed": None})
    assert cfg.model.num_layers == 3          # yaml over default
    assert cfg.optim.lr == pytest.approx(1e-3)  # "1e-3" is a YAML string; read as a float
    assert cfg.model.hidden_size == 200       # --set over yaml
    assert cfg.model.cell == "rnn"            # option over --set; None options ignored
    assert cfg.train.seed is None


@pytest.mark.parametrize("sets, message", [
    (["model.hiden_size=3"], "did you mean 'model.hidden_size'"),
    (["modle.cell=gru"], "did you mean 'model'"),
    (["model.hidden_size=abc"], "model.hidden_size (--set) must be int"),
    (["model.hidden_size=2.5"], "must be int"),
    (["model.dropout=1.5"], "model.dropout (--set) is 1.5; it must be <= 0.99"),
    (["train.batch_size=0"], "train.batch_size (--set) is 0; it must be >= 1"),
    (["model.cell=lstn"], "did you mean 'lstm'"),
    (["train.progress=3"], "must be bool"),
    (["hidden_size=3"], "must look like section.key=value"),
    (["data.train_frac=0.99"], "train_frac + data.val_frac"),
])
def test_bad_values_name_the_key(sets, message):
    with pytest.raises(ConfigError, match=None) as info:
        build_config(sets=sets)
    assert message in str(info.value)


def test_yaml_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hidden_sise: 10\n")
    with pytest.raises(ConfigError) as info:
        build_config(bad)
    assert "model.hidden_sise" in str(info.value) and str(bad) in str(info.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_yaml(broken)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_yaml(tmp_path / "missing.yaml")


def test_no_stopping_rule_is_an_error():
    with pytest.raises(ConfigError, match="no stopping rule"):
        build_config(sets=["train.max_time=null"])


def test_resolved_config_round_trips(tmp_path):
    cfg = build_config(sets=["model.cell=gru", "train.max_steps=7"])
    (tmp_path / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
    assert build_config(tmp_path / "config.yaml") == cfg


def test_every_key_has_help():
    rows = describe_keys()
    assert len(rows) > 30 and all(help_ for _, _, help_ in rows)


def test_readme_documents_every_key():
    """Every key is in the README or the docs/ pages it links to (docs/training.md has the
    key table)."""
    pages = [CONFIGS.parent / "README.md", *sorted((CONFIGS.parent / "docs").glob("*.md"))]
    docs = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    missing = [key for key, _, _ in describe_keys() if f"`{key}`" not in docs]
    assert not missing, f"README and docs/ lack {missing}"


def test_yaml_pitfalls(tmp_path):
    (tmp_path / "dup.yaml").write_text("model:\n  cell: gru\ntrain:\n  max_steps: 5\n"
                                       "model:\n  hidden_size: 8\n")
    one_line_error(run_cli("train", "--config", "dup.yaml", cwd=tmp_path),
                   "gives 'model' twice (lines 1 and 5)")
    (tmp_path / "wrong.yaml").write_text("model:\n  lr: 0.1\n")
    one_line_error(run_cli("train", "--config", "wrong.yaml", cwd=tmp_path),
                   "'lr' is a key of the 'optim' section; use optim.lr")


def test_config_files_apply_in_order_none_ignored(trained):
    work, corpus, _ = trained
    (work / "a.yaml").write_text("model:\n  cell: gru\ntrain:\n  max_steps: 4\n")
    (work / "b.yaml").write_text("train:\n  max_steps: 3\n")
    out = run_ok("train", *TINY, "--config", "a.yaml", "--config", "b.yaml", "--data", corpus,
                 "--run-name", "two-configs", cwd=work)
    assert "done: run two-configs, 3 steps" in out.stdout and "model: gru" in out.stderr


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_number_is_named_as_such(tmp_path, value):
    one_line_error(run_cli("train", "--max-time", value, cwd=tmp_path),
                   f"train.max_time (--max-time) is {value}; it must be a finite number")
