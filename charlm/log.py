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


def open_writer(log_dir: str | Path, purge_step: int | None = None):
    """A SummaryWriter on ``log_dir`` (created if needed); the caller closes it.

    Args:
        purge_step: on resume, the first step to be written again; TensorBoard hides events
            at or after it that an interrupted run left, so no step appears twice.
    """
    from torch.utils.tensorboard import (
        SummaryWriter,  # heavy import, only when training
    )

    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


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
