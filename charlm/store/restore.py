"""The model a checkpoint holds, rebuilt: its config, vocabulary and weights, checked to fit
together before any memory is spent on the model.

Shape legend: V vocab size, E embedding size, H hidden size, L layers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from charlm.config import RunConfig, from_dict
from charlm.data.vocab import ByteVocab, Vocab, vocab_from_payload
from charlm.errors import CharLMError, CheckpointError
from charlm.models.lm import CharLM, create_model
from charlm.store.entries import check_entries, instead

logger = logging.getLogger(__name__)


def check_checkpoint(ckpt: dict, source: str = "checkpoint") -> tuple[RunConfig, Vocab | ByteVocab]:
    """Everything :func:`restore_model` checks, without building the model: the config and
    vocabulary are valid, every weight is finite, and the weights have exactly the names and
    shapes of the model the config describes (compared with one built on the ``meta`` device,
    which allocates nothing).

    Args:
        ckpt: a loaded checkpoint (:func:`charlm.store.checkpoint.load_checkpoint`).
        source: how to name the checkpoint in errors (its path).
    Returns:
        ``(config, vocabulary)``.
    Raises:
        CheckpointError: naming an entry of the wrong type
            (:func:`~charlm.store.entries.check_entries`), the config key, vocabulary problem,
            or the tensors that are missing, unknown, misshapen or not finite.
    """
    check_entries(ckpt, Path(source))  # cheap; a caller may pass a dict it built itself
    try:
        cfg = from_dict(ckpt["config"], source=f"{source} config")
    except CharLMError as exc:
        raise CheckpointError(f"{source} holds an invalid config: {exc}") from None
    try:
        vocab = vocab_from_payload(ckpt["vocab"])
    except ValueError as exc:
        raise CheckpointError(f"{source} holds an invalid vocabulary (its vocab entry): "
                              f"{exc}") from None
    weights = ckpt["model"]
    bad = [name for name, t in weights.items()
           if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{source} holds non-finite weights (NaN or inf) in "
                              f"{', '.join(bad[:5])}; it cannot be used: take an earlier "
                              f"checkpoint of the run (best.pt or last.pt)")
    _check_vocab_rows(weights, vocab, source)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in create_model(cfg.model, vocab.size).state_dict().items()}
    _check_weights(shapes, weights, cfg, source)
    return cfg, vocab


def restore_model(ckpt: dict, device: torch.device | str = "cpu", source: str = "checkpoint"
                  ) -> tuple[CharLM, Vocab | ByteVocab, RunConfig]:
    """Rebuild the model (in eval mode, on ``device``), vocabulary and config of a loaded
    checkpoint, after :func:`check_checkpoint`.

    Args:
        source: how to name the checkpoint in errors (its path).
    Raises:
        CheckpointError: as :func:`check_checkpoint`.
    """
    cfg, vocab = check_checkpoint(ckpt, source)
    model = create_model(cfg.model, vocab.size)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), vocab, cfg


def _check_weights(want: dict[str, torch.Size], weights: dict, cfg: RunConfig, source: str
                   ) -> None:
    """A one-line account of the weights that do not fit the model's ``want`` shapes."""
    missing = [k for k in want if k not in weights]
    unknown = [k for k in weights if k not in want]
    shapes = [f"{k} {tuple(weights[k].shape)} (expected {tuple(v)})"
              for k, v in want.items() if k in weights and weights[k].shape != v]
    if not (missing or unknown or shapes):
        return
    m = cfg.model
    what = f"the {m.cell} model its config describes ({m.num_layers} x {m.hidden_size})"
    parts = ([f"lacks {', '.join(missing[:4])}"] if missing else []) + (
        [f"has unknown {', '.join(unknown[:4])}"] if unknown else []) + (
        [f"has misshapen {', '.join(shapes[:3])}"] if shapes else [])
    raise CheckpointError(f"{source} does not hold the weights of {what}: it "
                          f"{'; it '.join(parts)}")


def _check_vocab_rows(weights: dict, vocab: Vocab | ByteVocab, source: str) -> None:
    """The embedding has a row per character of the vocabulary: a vocab entry of another
    size belongs to other weights (an edited file, or two files' entries mixed)."""
    rows = weights.get("embedding.weight")
    if isinstance(rows, torch.Tensor) and rows.dim() == 2 and rows.shape[0] != vocab.size:
        raise CheckpointError(f"{source} cannot be used: its vocab entry holds {vocab.size} "
                              f"characters but its model entry's embedding has {rows.shape[0]} "
                              f"rows, so they do not belong together (the file was changed, "
                              f"or not written by charlm); {instead(Path(source))}")
