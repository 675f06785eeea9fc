"""Checkpoints: exact save and load, refusing pickles and bad files, atomic writes, and how
a user names one."""

import os
import pickle

import pytest
import torch

from charlm.store.checkpoint import CheckpointError, find_checkpoint, load_checkpoint, save_checkpoint
from charlm.config import build_config
from charlm.data import Vocab
from charlm.config.cells import CELLS
from charlm.models import create_model
from charlm.store.checkpoint import make_payload, restore_model as load_model
from charlm.training import TrainState, make_optimizer


@pytest.mark.parametrize("cell", list(CELLS))
def test_save_then_load_gives_identical_logits(tmp_path, cell):
    cfg = build_config(sets=[f"model.cell={cell}", "model.hidden_size=24"])
    vocab = Vocab.from_text("hello, world 🙂")
    model = create_model(cfg.model, vocab.size).eval()
    payload = make_payload(model, make_optimizer(model, cfg.optim), TrainState(step=3).to_dict(),
                           cfg, vocab)
    path = save_checkpoint(payload, tmp_path / "run" / "best.pt")
    raw = torch.load(path, weights_only=True)              # plain containers only
    assert raw["state"]["step"] == 3 and raw["vocab"] == vocab.chars
    loaded, vocab2, cfg2 = load_model(load_checkpoint(path), torch.device("cpu"))
    ids = torch.randint(0, vocab.size, (2, 9))
    assert torch.equal(model(ids)[0], loaded(ids)[0])
    assert cfg2 == cfg and vocab2.chars == vocab.chars


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not a checkpoint"])
def test_bad_files_give_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unknown_format_version(tmp_path):
    path = tmp_path / "f.pt"
    torch.save({"format_version": 99}, path)
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(path)


def test_find_checkpoint_picks_newest_run(tmp_path):
    for name, mtime in (("old", 1000), ("new", 2000)):
        (tmp_path / name).mkdir()
        for f in ("best.pt", "last.pt"):
            (tmp_path / name / f).write_bytes(b"x")
            os.utime(tmp_path / name / f, (mtime, mtime))
    assert find_checkpoint(None, tmp_path) == tmp_path / "new" / "best.pt"
    assert find_checkpoint(tmp_path / "old") == tmp_path / "old" / "best.pt"
    with pytest.raises(CheckpointError, match="no runs with checkpoints"):
        find_checkpoint(None, tmp_path / "none")


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint({"format_version": 1, "x": torch.ones(3)}, tmp_path / "last.pt")
    with pytest.raises(Exception):
        save_checkpoint({"format_version": 1, "bad": lambda: 0}, path)  # unpicklable mid-write
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left
