"""TensorBoard writers (one SummaryWriter per run). What to write, and when, is decided in
:mod:`charlm.training.reporting`, whose module doc lists the tags.

The writers here give TensorBoard's tabs what a user comes for: the CUSTOM SCALARS tab holds
train and val loss (and bpc) on one chart each (:func:`log_layout`), the HPARAMS table opens on
the hyperparameters that tell runs apart, never on folder paths (:func:`log_hparams`), and the
PROJECTOR shows the character embedding with each row labelled (:func:`log_embedding`).
Torch is imported inside functions so that the CLI's ``--help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)


def open_writer(log_dir: str | Path, purge_step: int | None = None) -> "SafeWriter":
    """A SummaryWriter on ``log_dir`` (created if needed), guarded by :class:`SafeWriter`;
    the caller closes it.

    Args:
        purge_step: on resume, the first step to be written again; TensorBoard hides events
            at or after it that an interrupted run left, so no step appears twice.
    """
    from torch.utils.tensorboard import SummaryWriter  # heavy import, only when writing

    _quiet_writer_threads()
    return SafeWriter(SummaryWriter(log_dir=str(log_dir), purge_step=purge_step), log_dir)


class SafeWriter:
    """A SummaryWriter (or its file writer) whose first failed write (a full disk, a file-size
    limit) logs one warning and turns TensorBoard off for the rest of the run, so the run,
    its checkpoints and its report go on.

    Every method of the wrapped writer is available; after a failure they do nothing.
    """

    def __init__(self, writer, log_dir: str | Path, failed: list | None = None) -> None:
        self._writer, self._log_dir = writer, log_dir
        self._failed = failed if failed is not None else []  # shared with file_writer

    @property
    def failed(self) -> bool:
        """True once a write failed."""
        return bool(self._failed)

    @property
    def file_writer(self) -> "SafeWriter":
        return SafeWriter(self._writer.file_writer, self._log_dir, self._failed)

    def __getattr__(self, name: str):
        attr = getattr(self._writer, name)
        if not callable(attr):
            return attr

        def guarded(*args, **kwargs):
            if self._failed:
                return None
            try:
                return attr(*args, **kwargs)
            except OSError as exc:
                self._failed.append(exc)
                logger.warning("cannot write TensorBoard events to %s (%s); the run goes on "
                               "without them, and its checkpoints are still saved",
                               self._log_dir, exc.strerror or exc)
                return None
        return guarded


def _quiet_writer_threads() -> None:
    """Keep TensorBoard's writer thread from printing a traceback when a write fails: the
    error reaches the main thread at its next write, where :class:`SafeWriter` reports it."""
    import threading

    try:
        from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
    except ImportError:  # another tensorboard: its thread may print, the run still goes on
        return

    previous = threading.excepthook
    if getattr(previous, "charlm_quiet", False):
        return

    def hook(args) -> None:
        if isinstance(args.thread, _AsyncWriterThread) and issubclass(args.exc_type, OSError):
            return
        previous(args)
    hook.charlm_quiet = True
    threading.excepthook = hook


# The hyperparameters that tell runs apart, in the order the HPARAMS table shows them; run
# context (device, world size) follows, then the rest of the schedule. Folder paths never.
HPARAMS = ("model.cell", "model.hidden_size", "model.num_layers", "model.embedding_size",
           "model.dropout", "optim.lr", "train.batch_size", "train.seq_len", "optim.grad_clip",
           "data.corpus", "data.unit", "train.precision", "device", "world_size",
           "optim.min_lr", "optim.warmup_steps", "optim.weight_decay", "optim.schedule",
           "train.seed")
# The columns the HPARAMS table shows first and ticks by default. TensorBoard (2.1x) sorts the
# table by each hyperparameter's ``differs`` flag, then by name, and ticks the first five; a
# run cannot know what its siblings differ in, so these are marked as differing.
LEADING = ("model.cell", "model.hidden_size", "model.num_layers", "optim.lr")
# The metrics of that table: tags whose last value the HPARAMS plugin shows.
METRICS = ("val/best_loss", "val/best_bpc", "loss/val", "bpc/val", "run/parameters",
           "run/steps", "run/wall_s", "run/chars_per_s")


def comparable_hparams(config: Mapping[str, Mapping[str, Any]], device: str,
                       world_size: int) -> dict[str, Any]:
    """The :data:`HPARAMS` of a run as TensorBoard takes them (None becomes 'none'; a corpus
    path becomes its file name)."""
    flat = {f"{section}.{key}": value for section, body in config.items()
            for key, value in body.items()} | {"device": device, "world_size": world_size}
    flat["data.corpus"] = Path(str(flat["data.corpus"])).name
    return {key: "none" if flat[key] is None else _printable(flat[key]) for key in HPARAMS}


def _printable(value: Any) -> Any:
    """``value``, with a string's lone surrogates (a file name that is not UTF-8 reaches
    Python with one per undecodable byte, and protobuf refuses them) written as escapes."""
    if not isinstance(value, str):
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def log_hparams(writer, hparams: Mapping[str, Any], final: Mapping[str, float],
                step: int) -> None:
    """Write the hparams summary, with :data:`METRICS` as its metrics, into the run's own
    event file, and the run's final figures (``final``: ``run/...`` tags) as scalars.

    ``SummaryWriter.add_hparams`` would open a second run in a sub-folder; writing the same
    summaries through this run's writer keeps scalars and hparams together.
    """
    from torch.utils.tensorboard.summary import hparams as summaries

    for tag, value in final.items():
        writer.add_scalar(tag, float(value), step)
    experiment, start, end = summaries(dict(hparams), {tag: 0.0 for tag in METRICS})
    for summary in (_leading_first(experiment), start, end):
        writer.file_writer.add_summary(summary, step)


def _leading_first(summary):
    """The experiment summary with the :data:`LEADING` hyperparameters marked ``differs``, so
    that TensorBoard's HPARAMS table shows them first."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    metadata = summary.value[0].metadata.plugin_data
    data = plugin_data_pb2.HParamsPluginData.FromString(metadata.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in LEADING
    metadata.content = data.SerializeToString()
    return summary


def log_layout(writer) -> None:
    """The CUSTOM SCALARS tab: train and val on one chart for loss and bpc, and the learning
    rate beside the gradient norm."""
    writer.add_custom_scalars({"charlm": {
        "loss: train and val (nats)": ["Multiline", ["train/loss", "loss/val"]],
        "bpc: train and val": ["Multiline", ["train/bpc", "bpc/val"]],
        "lr and grad norm": ["Multiline", ["lr", "train/grad_norm"]],
        "time: step ms and share evaluating": ["Multiline", ["time/step_ms",
                                                             "time/eval_fraction"]]}})


def log_gates(writer, stats: dict, step: int) -> None:
    """``val/gates/``: left- and right-saturated fractions of each sigmoid gate."""
    for layer, gates in stats.items():
        for gate, (left, right) in gates.items():
            writer.add_scalar(f"val/gates/layer{layer}_{gate}_left", left, step)
            writer.add_scalar(f"val/gates/layer{layer}_{gate}_right", right, step)


def log_embedding(writer, weights, labels: list[str], step: int) -> None:
    """The PROJECTOR: the (V, E) embedding, each row labelled by its character. Skipped when
    this step's is written already (a resume with nothing left to train), which TensorBoard
    would otherwise overwrite with a warning printed to stdout."""
    logdir = writer.get_logdir()  # None once a SafeWriter has failed
    if logdir is None or (Path(logdir) / f"{step:05}").is_dir():
        return
    writer.add_embedding(weights.detach().float().cpu(), metadata=labels, tag="char_embedding",
                         global_step=step)
