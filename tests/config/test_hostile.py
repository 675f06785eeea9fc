"""Hostile configs and ``--set`` values (issue 22, kinds 1-3): sizes that can only be a
mistake, unbounded input, and exceptions (RecursionError, codec errors) that validation must
turn into one ConfigError line."""

import os

import pytest
from helpers import TINY, one_line_error, run_cli

from charlm.config import ConfigError, build_config, load_yaml
from charlm.config.resolve import MAX_CONFIG_BYTES, MAX_YAML_DEPTH, parse_set
from charlm.errors import shorten


@pytest.mark.parametrize("key, value", [
    ("model.hidden_size", 10**20), ("model.num_layers", 1_000_000),
    ("model.embedding_size", 10**9), ("train.batch_size", 10**12),
    ("train.seq_len", 10**12), ("train.eval_batch_size", 10**12)])
def test_sizes_that_can_only_be_a_mistake_are_refused(key, value):
    with pytest.raises(ConfigError, match=rf"{key} \(--set\) is {value}; it must be <="):
        build_config(sets=[f"{key}={value}"])


def test_a_huge_integer_is_quoted_shortened():
    with pytest.raises(ConfigError) as err:
        build_config(sets=["model.hidden_size=" + "9" * 5000])
    assert len(str(err.value)) < 200, str(err.value)


def test_yaml_alias_bomb_is_refused_without_expanding(tmp_path):
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        bomb.append(f"{chr(97 + i)}: &{chr(97 + i)} [{','.join(['*' + chr(96 + i)] * 9)}]")
    f = tmp_path / "bomb.yaml"
    f.write_text("model:\n" + "\n".join("  " + line for line in bomb) + "\n")
    with pytest.raises(ConfigError, match=r"uses an alias \(\*a\)") as err:
        load_yaml(f)
    assert len(str(err.value)) < 300


def test_set_value_with_an_alias_is_refused():
    with pytest.raises(ConfigError, match="alias"):
        parse_set(["model.cell=[&x a, *x]"])


@pytest.mark.parametrize("where", ["file", "set"])
def test_deep_nesting_is_one_config_error_not_recursion(tmp_path, where):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ConfigError, match=f"deeper than {MAX_YAML_DEPTH} levels"):
        if where == "file":
            f = tmp_path / "deep.yaml"
            f.write_text(f"model:\n  cell: {deep}\n")
            load_yaml(f)
        else:
            parse_set([f"model.cell={deep}"])


def test_config_that_is_not_a_regular_file_is_refused_unread(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        load_yaml("/dev/zero")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):  # would block if opened to read
        load_yaml(fifo)


def test_config_larger_than_the_bound_is_refused(tmp_path):
    f = tmp_path / "huge.yaml"
    f.write_text("# " + "x" * MAX_CONFIG_BYTES + "\nmodel: {}\n")
    with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        load_yaml(f)


@pytest.mark.parametrize("encoding", ["base64", "hex", "zlib", "rot13", "bz2", "uu"])
def test_only_text_encodings_are_accepted(encoding):
    with pytest.raises(ConfigError, match="not a text encoding.*--encoding"):
        build_config(sets=[f"data.encoding={encoding}"])


def test_unknown_encoding_is_refused_in_the_config():
    with pytest.raises(ConfigError, match="Python does not know"):
        build_config(sets=["data.encoding=no-such-codec"])


def test_shorten_keeps_messages_short():
    assert shorten("abc") == "'abc'"
    long = shorten("x" * 10_000_000)
    assert len(long) < 100 and "10000002 characters" in long
    assert shorten(list(range(10**6))) == "<a list of 1000000 items>"


def test_cli_refuses_hostile_config_in_one_line(tmp_path, corpus_file):
    def train(*args):
        return run_cli("train", *TINY, "--data", corpus_file, "--max-steps", 1, *args,
                       cwd=tmp_path)
    one_line_error(train("--config", "/dev/zero"), "--config")
    one_line_error(train("--encoding", "base64"), "--encoding")
    one_line_error(train("--hidden-size", 10**20), "model.hidden_size")
    assert not (tmp_path / "checkpoints").exists()  # no run folder for a run never started

