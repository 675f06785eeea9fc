"""Logging setup and TensorBoard: one SummaryWriter per run, scalars grouped by prefix.

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
    from torch.utils.tensorboard import SummaryWriter  # heavy import, only when training

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


def log_gradients(writer, model, norms, cfg, train_ids, step: int) -> None:
    """TensorBoard ``grad/``: pre-clip norm histogram, fraction clipped, per-parameter norms
    (this step's, after clipping) and the gradient-flow profile ``grad/flow_k{k}``."""
    clip = cfg.optim.grad_clip
    if norms is not None:
        writer.add_histogram("grad/norm_preclip", norms, step)
        if clip > 0:
            writer.add_scalar("grad/clipped_frac", (norms > clip).float().mean().item(), step)
    for name, p in model.named_parameters():
        if p.grad is not None:
            writer.add_scalar(f"grad/param/{name}", p.grad.norm().item(), step)
    from charlm.gradflow import gradient_profile, sample_windows
    from charlm.inspection import BURN_IN

    K = cfg.train.gradflow_horizon
    windows = sample_windows(train_ids, BURN_IN + K + 2, 8, seed=step)
    profile = gradient_profile(model, windows, K, BURN_IN)
    for k in sorted({0, 1, 5, 10, 25, 50, 100, 150, 200, K} & set(range(K + 1))):
        writer.add_scalar(f"grad/flow_k{k:03d}", profile[k], step)


def log_gates(writer, stats: dict, step: int) -> None:
    """TensorBoard ``gates/``: left- and right-saturated fractions of each sigmoid gate."""
    for layer, gates in stats.items():
        for gate, (left, right) in gates.items():
            writer.add_scalar(f"gates/layer{layer}_{gate}_left", left, step)
            writer.add_scalar(f"gates/layer{layer}_{gate}_right", right, step)
