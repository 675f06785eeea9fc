"""The config of a run that starts from a checkpoint: a resumed run's saved config with the
overrides given now, or a fine-tuning run that keeps the checkpoint's model.

Plain data in (the checkpoint's ``config`` dict), a :class:`RunConfig` out: nothing here loads
files or imports torch.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping

from charlm.config.resolve import build_config, changed_keys, from_dict
from charlm.config.schema import RunConfig
from charlm.errors import ConfigError, shorten

logger = logging.getLogger(__name__)

# Keys a resumed run cannot change: they fix the weights' shapes or the data layout that the
# saved position and hidden state refer to (the seed: every RNG state is restored anyway).
FROZEN_ON_RESUME = ("model.", "data.unit", "data.train_frac", "data.val_frac", "train.batch_size",
                    "train.seq_len", "train.run_name", "train.seed")


def merge_overrides(saved: RunConfig, wanted: RunConfig) -> RunConfig:
    """Accept the overrides given on resume, log each, refuse the ones that cannot change.

    Raises:
        ConfigError: naming each frozen key that was changed.
    """
    changes = changed_keys(saved, wanted)
    frozen = [k for k in changes if k.startswith(FROZEN_ON_RESUME)]
    if frozen:
        raise ConfigError(
            "a resumed run cannot change " + ", ".join(
                f"{k} ({changes[k][0]} -> {changes[k][1]})" for k in frozen) +
            "; start a new run, or use --init-from CHECKPOINT to fine-tune from its weights")
    for key, (old, new) in changes.items():
        logger.info("resume override: %s %s -> %s", key, old, new)
    return wanted


def config_for_resume(saved_tree: Mapping[str, Any], run_dir: Path, yaml_path=None, sets=(),
                      options=None) -> RunConfig:
    """The saved config of a run with the overrides given now (``stop_at_step`` is cleared;
    the run name is the folder's, so a copied run folder logs under its own name).

    Args:
        saved_tree: the checkpoint's ``config`` entry.
    Raises:
        ConfigError: for bad overrides or ones that cannot change on resume.
    """
    saved = from_dict(saved_tree)
    base = dataclasses.replace(saved, train=dataclasses.replace(
        saved.train, stop_at_step=None, run_name=Path(run_dir).name))
    return merge_overrides(base, build_config(yaml_path, sets, options, base=base))


def config_for_init(saved_tree: Mapping[str, Any], yaml_path=None, sets=(), options=None
                    ) -> RunConfig:
    """A new run's config whose model section and ``data.unit`` are the checkpoint's
    (fine-tuning); everything else starts from the defaults as for a new run.

    Raises:
        ConfigError: if model settings or the unit given now (even ones equal to a default)
            differ from the checkpoint's, listing them.
    """
    saved = from_dict(saved_tree)
    cfg = build_config(yaml_path, sets, options)
    on_saved = changed_keys(saved, build_config(yaml_path, sets, options, base=saved))
    clash = [f"{k} {shorten(old)} -> {shorten(new)}" for k, (old, new) in on_saved.items()
             if k.startswith("model.") or k == "data.unit"]
    if clash:
        raise ConfigError(f"--init-from keeps the checkpoint's model settings and data.unit; "
                          f"drop the ones that differ (checkpoint -> given): "
                          f"{', '.join(clash)}")
    return dataclasses.replace(cfg, model=saved.model,
                               data=dataclasses.replace(cfg.data, unit=saved.data.unit))
