"""``charlm.train(data=..., cell=..., max_time=..., **config)``: one training run from Python,
the same run ``charlm train`` makes."""

from __future__ import annotations

from charlm.config import build_config


def train(data: str, cell: str = "lstm", max_time: float | None = None, config=None,
          **settings):
    """Train a run and return its summary (``run_name``, ``best_path``, ``val_bpc``, ...).

    Args:
        data: a text file, a folder of them, or a named corpus (``tinyshakespeare``).
        cell: the core (``charlm.config.cells.CELLS``).
        max_time: seconds of training.
        config: a YAML config file (or several), read first.
        settings: dotted keys as ``section__key`` or plain keys of any section
            (``hidden_size=128``, ``max_steps=300``, ``train__seed=1``).
    Raises:
        ConfigError: for an unknown key or a bad value, naming it.
    """
    from charlm.config.schema import SECTIONS
    from charlm.training.run import train_run

    options = {"data.corpus": data, "model.cell": cell, "train.max_time": max_time}
    for key, value in settings.items():
        if "__" in key:
            options[key.replace("__", ".")] = value
            continue
        section = next((s for s, kind in SECTIONS.items()
                        if key in getattr(kind, "__dataclass_fields__", {})), None)
        options[f"{section or 'train'}.{key}"] = value
    return train_run(build_config(config, options=options))
