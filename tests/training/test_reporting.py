"""What TensorBoard shows after a run, read back from the event files: train and val on one
chart, an HParams table that opens on what tells runs apart, the embedding in the Projector,
samples that keep their layout, and a first Time Series screen that shows the whole val
curve."""

import os

import pytest
from helpers import TINY, TRAIN, run_ok, scalars
from tensorboard_screen import first_cards, served, y_range
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from charlm.data.vocab import char_label
from charlm.system.tensorboard import HPARAMS, METRICS


@pytest.fixture(scope="module")
def events(trained):
    """The event files of a finished tiny run (stdlib text, with indentation)."""
    work, corpus, _ = trained
    run_ok("train", *TINY, "--data", corpus, "--run-name", "tb", "--max-steps", 40, cwd=work)
    found = EventAccumulator(str(work / "runs" / "tb"), size_guidance={"tensors": 0})
    found.Reload()
    return work, found


def hparams_data(events, which):
    content = events.PluginTagToContent("hparams")[f"_hparams_/{which}"]
    return plugin_data_pb2.HParamsPluginData.FromString(content)


def test_train_and_val_share_one_chart(events):
    _, found = events
    layout = layout_pb2.Layout()
    layout.ParseFromString(found.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts["loss: train and val (nats)"] == ["train/loss", "loss/val"]
    assert charts["bpc: train and val"] == ["train/bpc", "bpc/val"]
    assert charts["lr and grad norm"] == ["lr", "train/grad_norm"]
    tags = set(found.Tags()["scalars"])
    assert all(tag in tags for chart in charts.values() for tag in chart)


def test_loss_bpc_and_lr_sort_before_the_diagnostics(events):
    _, found = events
    groups = sorted({tag.split("/")[0] for tag in found.Tags()["scalars"]})
    assert groups[:3] == ["bpc", "loss", "lr"]
    assert "val/gates/layer0_f_left" in found.Tags()["scalars"]  # diagnostics come after
    assert not [g for g in groups if g in ("gates", "grad", "hparam")]


def test_the_issues_val_curve_loses_its_final_point_to_ignore_outliers():
    """Issue 22's six val points (a 150-s Quick start run, every 150 steps): the card's y range
    leaves out the first point and the final one."""
    values = [2.149, 1.785, 1.649, 1.561, 1.517, 1.492]
    assert y_range(values) == pytest.approx((1.55, 1.95))


def test_first_tensorboard_screen_is_the_whole_val_curve(trained):
    """Time Series' first screen, with TensorBoard's defaults (tests/tensorboard_screen.py
    holds the frontend's rules): the val curve's cards alone, and every val point, the first
    and the final one included, inside the y range the card draws."""
    work, corpus, _ = trained
    run_ok("train", *TINY, "--data", corpus, "--run-name", "screen", "--max-steps", 200,
           "--set", "train.eval_interval=25", cwd=work)
    found = EventAccumulator(str(work / "runs" / "screen"))
    found.Reload()
    assert first_cards(found.Tags()["scalars"]) == ["bpc/val", "loss/val"]
    for tag in ("bpc/val", "loss/val"):
        values = served(scalars(work / "runs" / "screen", tag))
        low, high = y_range(values)
        assert [v for v in values if not low <= v <= high] == [], (tag, low, high, values)


def test_hparams_open_on_what_tells_runs_apart_and_hold_no_paths(events):
    _, found = events
    experiment = hparams_data(found, "experiment").experiment
    names = [h.name for h in experiment.hparam_infos]
    assert names == list(HPARAMS)
    assert names[:9] == ["model.cell", "model.hidden_size", "model.num_layers",
                         "model.embedding_size", "model.dropout", "optim.lr",
                         "train.batch_size", "train.seq_len", "optim.grad_clip"]
    assert not [n for n in names if n.endswith("_dir") or n == "train.run_name"]
    # TensorBoard sorts the table by `differs`, then name: cell, size, layers and lr lead
    shown = sorted(experiment.hparam_infos, key=lambda h: (not h.differs, h.name))
    assert [h.name for h in shown][:4] == ["model.cell", "model.hidden_size",
                                           "model.num_layers", "optim.lr"]
    values = hparams_data(found, "session_start_info").session_start_info.hparams
    assert values["data.corpus"].string_value == "corpus.txt"           # a name, not a path
    assert values["device"].string_value == "cpu" and values["world_size"].number_value == 1
    assert [m.name.tag for m in experiment.metric_infos] == list(METRICS)
    scalars = set(found.Tags()["scalars"])
    assert set(METRICS) <= scalars
    assert found.Scalars("run/steps")[-1].value == 40
    assert found.Scalars("run/parameters")[-1].value > 0


def test_the_embedding_is_in_the_projector_with_labelled_rows(events):
    work, _ = events
    config = (work / "runs" / "tb" / "projector_config.pbtxt").read_text()
    assert "char_embedding" in config and "metadata.tsv" in config
    folder = next((work / "runs" / "tb").glob("*/char_embedding"))
    labels = (folder / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    rows = (folder / "tensors.tsv").read_text().splitlines()
    assert len(labels) == len(rows) > 60 and "newline" in labels and "space" in labels
    assert all("\t" not in label and label for label in labels)
    assert char_label("\x07") == "U+0007" and char_label("é") == "é"


def test_samples_keep_their_layout_and_compare_across_steps(events):
    _, found = events
    samples = found.Tensors("sample/text/text_summary")
    texts = [s.tensor_proto.string_val[0].decode() for s in samples]
    assert len(texts) >= 2 and all(t.startswith("```\n") and t.endswith("\n```") for t in texts)
    assert [s.step for s in samples] == [20, 40]


def test_time_accounting_is_logged(events):
    _, found = events
    fraction = [e.value for e in found.Scalars("time/eval_fraction")]
    assert fraction and all(0.0 <= f < 1.0 for f in fraction)
    assert all(e.value > 0 for e in found.Scalars("time/step_ms"))


def test_inspect_writes_the_projector_for_any_checkpoint(trained, tmp_path):
    work, _, _ = trained
    out = run_ok("inspect", "base", "--projector", "--output", tmp_path / "proj", cwd=work)
    assert "wrote the embedding to" in out.stdout
    assert (tmp_path / "proj" / "projector_config.pbtxt").is_file()


def test_a_corpus_path_that_is_not_utf8_trains_and_resumes(tmp_path, stdlib_text):
    name = os.fsdecode(b"bad\xffbyte.txt")
    (tmp_path / name).write_text(stdlib_text[:20000], encoding="utf-8")
    for args in (["--run-name", "odd", "--max-steps", 3], ["--resume", "odd", "--max-steps", 5]):
        assert "done: run odd" in run_ok(*TRAIN, "--data", tmp_path / name, *args,
                                         cwd=tmp_path).stdout
