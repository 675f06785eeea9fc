"""``charlm export``: a checkpoint as a folder that runs anywhere onnxruntime does
(docs/export.md); no training code."""

from __future__ import annotations

import logging

import click

from charlm.cli.common import cache_option, h, open_model, read_corpus

logger = logging.getLogger(__name__)

EXTRA = ("onnx", "onnxruntime", "onnxscript", "safetensors")


@click.command("export")
@click.argument("checkpoint", required=False)
@click.option("--checkpoint-dir", default="checkpoints", show_default=True,
              help="Where run names and 'latest' are looked up.")
@click.option("-o", "--output", required=True, metavar="DIR",
              help="The folder to write; it must not exist yet, or be empty.")
@click.option("--int8", is_flag=True,
              help="Also write model.int8.onnx (dynamic int8 weights: smaller and faster at "
                   "batch 1) and record its val bpc beside fp32's.")
@click.option("--no-val", is_flag=True,
              help=h("Do not measure the graphs' loss on the val split.", "measured when the "
                     "checkpoint's corpus is readable"))
@click.option("--val-chars", type=click.IntRange(min=2), default=None,
              help=h("Score at most this many characters of the val split.",
                     "the checkpoint's train.eval_max_chars, else the whole split"))
@click.option("--web", is_flag=True,
              help="Also write index.html, sampler.js and package.json: a page that samples "
                   "in the browser with onnxruntime-web (npm install, then serve the folder).")
@cache_option
def export(checkpoint, checkpoint_dir, output, int8, no_val, val_chars, web, cache_dir) -> None:
    """Export CHECKPOINT (a .pt file, a run folder, a run name or 'latest') to --output DIR:
    model.onnx (one step, state in and out), vocab.json, config.json, model.safetensors and a
    README.md; needs the onnx extra (pip install 'charlm[onnx]').

    Sample from it without torch: charlm sample --engine onnx DIR.
    """
    from charlm.export.folder import check_output, export_model

    require_extra()
    check_output(output)
    _, _, model, vocab, cfg, _ = open_model(checkpoint, checkpoint_dir, "cpu",
                                            check=known_core)
    val = None if no_val else val_split(cfg, vocab, cache_dir,
                                        val_chars or cfg.train.eval_max_chars)
    config = export_model(model, vocab, cfg, output, int8, val, web=web)
    figures = [f"{key} {config[key]:.4f}" for key in ("val_bpc", "val_bpc_int8")
               if config.get(key) is not None]
    click.echo(f"exported {cfg.model.cell} {cfg.model.num_layers} x {cfg.model.hidden_size} "
               f"to {output} ({config['exporter']} exporter"
               + "".join(f", {f}" for f in figures) + ")")


def known_core(ckpt: dict, path) -> None:
    """Refuse, in one line, a checkpoint whose core this charlm's cell table lacks (one made
    by a newer charlm).

    Raises:
        CheckpointError: naming the core, the known ones and what to do.
    """
    from charlm.config.cells import CELLS
    from charlm.errors import CheckpointError

    cell = ((ckpt.get("config") or {}).get("model") or {}).get("cell")
    if isinstance(cell, str) and cell not in CELLS:
        raise CheckpointError(f"{path} holds a '{cell}' core, which this charlm does not know "
                              f"(it knows {', '.join(CELLS)}): it was made by a newer charlm; "
                              f"upgrade charlm, or name another CHECKPOINT")


def require_extra() -> None:
    """Raises OptionError naming the extra to install when one of its packages is missing."""
    import importlib.util

    from charlm.errors import OptionError

    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise OptionError(f"charlm export needs {', '.join(missing)}: install the onnx extra "
                          f"with pip install 'charlm[onnx]'")


def val_split(cfg, vocab, cache_dir, max_chars: int | None):
    """The checkpoint's val split (its first ``max_chars + 1`` ids), or None (logged) when
    its corpus cannot be read or the split is too short to score."""
    from charlm.errors import DataError

    try:
        ids = read_corpus(cfg.data, vocab, cache_dir).splits["val"]
    except DataError as exc:
        logger.warning("val bpc not measured (pass --no-val to skip it): %s", exc)
        return None
    ids = ids if max_chars is None else ids[:max_chars + 1]
    return ids if len(ids) >= 2 else None
