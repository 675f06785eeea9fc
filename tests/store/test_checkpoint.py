"""Checkpoints: exact save and load, refusing pickles and bad files, atomic writes, and how
a user names one."""

import errno
import os
import pickle
from pathlib import Path

import pytest
import torch
from helpers import TRAIN, one_line_error, run_cli

from charlm.config import build_config
from charlm.config.cells import CELLS
from charlm.data.vocab import Vocab
from charlm.errors import CheckpointError
from charlm.models.lm import create_model
from charlm.store.checkpoint import load_checkpoint, make_payload, save_checkpoint
from charlm.store.names import find_checkpoint
from charlm.store.restore import restore_model as load_model
from charlm.training.loop import TrainState
from charlm.training.step import make_optimizer


def damaged(run: Path, into: Path, change) -> Path:
    ckpt = torch.load(run / "last.pt", weights_only=True)
    change(ckpt)
    into.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, into / "last.pt")
    (into / "config.yaml").write_text("precious\n")
    return into


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
    with pytest.raises(AttributeError, match="Can't pickle local object"):  # a bug, not a user
        save_checkpoint({"format_version": 1, "bad": lambda: 0}, path)  # error: mid-write
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("optimizer"), "it lacks optimizer"),
    (lambda c: c.pop("rng"), "it lacks rng"),
    (lambda c: c["state"].update(extra_field=1), "unknown fields extra_field"),
    (lambda c: c["model"].pop("decoder.bias"), "lacks decoder.bias"),
    (lambda c: c["model"].update(extra=torch.zeros(2)), "has unknown extra"),
    (lambda c: c.update(vocab=c["vocab"][::-1]), "invalid vocabulary"),
    (lambda c: c.update(format_version=2), "written by a newer charlm"),
    (lambda c: c["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)),
     "its rng entry holds states that do not restore into a generator"),
    (lambda c: c.update(hidden=tuple(h[:, :1] for h in c["hidden"])),
     "its carried hidden state is (1, 1, 32)"),
    (lambda c: c["state"].update(step=-5),
     "its state entry holds a dict whose 'step' is an int (-5)"),
])
def test_incomplete_or_foreign_checkpoints_change_nothing(trained, tmp_path, change,
                                                              message):
    work, _, run = trained
    folder = damaged(run, tmp_path / "hurt", change)
    for args in (["--resume", folder], ["--init-from", folder / "last.pt"]):
        result = run_cli("train", *args, "--max-steps", 30, cwd=work)
        if args[0] == "--init-from" and message in (
                "it lacks optimizer", "it lacks rng", "unknown fields extra_field",
                "its rng entry holds states that do not restore into a generator",
                "its carried hidden state is (1, 1, 32)"):
            continue  # fine-tuning needs only the weights, vocabulary and config
        one_line_error(result, message)
    assert (folder / "config.yaml").read_text() == "precious\n"


def test_a_checkpoint_write_that_fails_mid_file_is_one_line(trained, monkeypatch):
    """torch.save turns a full disk or a file-size limit into a RuntimeError."""
    work, corpus, _ = trained

    def full(obj, fh, *args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")

    monkeypatch.setattr(torch, "save", full)
    one_line_error(run_cli(*TRAIN, "--data", corpus, "--run-name", "diskfull", "--max-steps", 5,
                           cwd=work), "cannot write checkpoint", "No space left on device")


def flip_bytes(path: Path, record_suffix: str, at: int = 40, count: int = 3) -> str:
    """Flip ``count`` bytes ``at`` bytes into the first zip record whose name ends with
    ``record_suffix`` (bit rot on disk: the file stays a valid zip); returns its name."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(record_suffix))
    with path.open("r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
        fh.seek(info.header_offset + 30 + name_len + extra_len + at)
        old = fh.read(count)
        fh.seek(-count, os.SEEK_CUR)
        fh.write(bytes(b ^ 0xA5 for b in old))
    return info.filename


@pytest.mark.parametrize("record", ["data/2", "data.pkl"])
def test_flipped_bytes_in_a_record_are_refused_naming_it_and_the_other_checkpoint(
        trained, tmp_path, record):
    """A few changed bytes inside a weight record used to load silently (torch does not
    check the zip's CRC-32s) and change every sample and score."""
    work, corpus, run = trained
    hurt = tmp_path / "hurt"
    hurt.mkdir()
    for name in ("best.pt", "last.pt"):
        (hurt / name).write_bytes((run / name).read_bytes())
    name = flip_bytes(hurt / "best.pt", record)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(hurt / "best.pt")
    assert f"its record {name} fails its CRC-32 check" in str(info.value)
    assert f"use the run's other checkpoint, {hurt / 'last.pt'}" in str(info.value)
    for args in (["sample", hurt / "best.pt", "--length", 5],
                 ["score", hurt, "--text", corpus]):
        one_line_error(run_cli(*args, cwd=work), "fails its CRC-32 check", "last.pt")
    assert load_checkpoint(hurt / "last.pt")["format_version"] == 1


def test_a_torn_checkpoint_names_the_runs_other_one(trained, tmp_path):
    work, _, run = trained
    hurt = tmp_path / "hurt"
    hurt.mkdir()
    (hurt / "best.pt").write_bytes((run / "best.pt").read_bytes())
    (hurt / "last.pt").write_bytes((run / "last.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=f"use the run's other checkpoint, "
                                              f"{hurt / 'best.pt'}, instead"):
        load_checkpoint(hurt / "last.pt")
