"""Writing only: logging setup, and TensorBoard (one SummaryWriter per run, scalars grouped by
prefix). What to write is decided elsewhere (:mod:`charlm.reporting`).

Tags: ``train/loss`` ``train/bpc`` ``train/lr`` ``train/grad_norm`` ``train/chars_per_s``
``train/nonfinite_steps``; ``val/loss`` ``val/bpc`` ``val/elapsed_s`` (training seconds at the
evaluation); ``sample/text``; ``gates/`` (saturation at each evaluation); ``grad/`` (every
``train.log_gradflow_interval`` steps); hparams with ``hparam/`` metrics at the end.
``global_step`` is always the optimizer step. Losses are in nats/char. Torch is imported
inside functions so that the CLI's ``--help`` stays fast.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger for the CLI: INFO by default, DEBUG with -v, WARNING with -q.

    In a torchrun job (``RANK`` set) ranks other than 0 log only warnings and errors, each
    line prefixed with ``[rank N]``.
    """
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    rank = int(os.environ.get("RANK", "0") or 0)
    fmt = "%(message)s" if rank == 0 else f"[rank {rank}] %(message)s"
    logging.basicConfig(level=level if rank == 0 else max(level, logging.WARNING), format=fmt,
                        force=True)


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


def flat_hparams(config: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Dotted-key hparams TensorBoard accepts (None becomes 'none')."""
    out = {}
    for section, body in config.items():
        for key, value in body.items():
            out[f"{section}.{key}"] = "none" if value is None else value
    return out


def log_hparams(writer, config: Mapping[str, Mapping[str, Any]],
                metrics: Mapping[str, float], step: int) -> None:
    """Write hparams and their ``hparam/`` metrics into the run's own event file.

    ``SummaryWriter.add_hparams`` would open a second run in a sub-folder; writing the same
    summaries through this run's writer keeps scalars and hparams together in the HPARAMS tab.
    """
    from torch.utils.tensorboard.summary import hparams

    metric_dict = {f"hparam/{k}": float(v) for k, v in metrics.items()}
    for summary in hparams(flat_hparams(config), metric_dict):
        writer.file_writer.add_summary(summary, step)
    for tag, value in metric_dict.items():
        writer.add_scalar(tag, value, step)


def log_gates(writer, stats: dict, step: int) -> None:
    """TensorBoard ``gates/``: left- and right-saturated fractions of each sigmoid gate."""
    for layer, gates in stats.items():
        for gate, (left, right) in gates.items():
            writer.add_scalar(f"gates/layer{layer}_{gate}_left", left, step)
            writer.add_scalar(f"gates/layer{layer}_{gate}_right", right, step)
