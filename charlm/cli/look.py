"""``charlm inspect``, ``gradflow`` and ``visualize``: look inside checkpoints and models."""

from __future__ import annotations

import math

import click

from charlm.cli.common import h, load_model_for


@click.command()
@click.argument("checkpoint")
@click.option("--gates", is_flag=True, help="Also measure gate saturation on the val split.")
def inspect(checkpoint, gates) -> None:
    """Print what CHECKPOINT holds: config, vocabulary, step, val figures, size, versions."""
    import yaml

    from charlm.checkpoint import BEST, LAST, find_checkpoint, load_checkpoint
    from charlm.metrics import nats_to_bits

    ckpt = load_checkpoint(find_checkpoint(checkpoint, prefer=(LAST, BEST)))
    st = ckpt.get("state", {})
    params = sum(t.numel() for k, t in ckpt["model"].items())
    best, last = st.get("best_val_loss", float("nan")), st.get("last_val_loss", float("nan"))
    click.echo(f"checkpoint: {checkpoint} (format {ckpt['format_version']})")
    click.echo("versions: " + ", ".join(f"{k} {v}" for k, v in ckpt["versions"].items()))
    click.echo(f"step {st.get('step')}, epoch {st.get('epoch')}, "
               f"{st.get('elapsed_s', 0):.1f} s trained, "
               f"{st.get('nonfinite_steps', 0)} non-finite steps skipped")
    unit = ckpt["config"].get("data", {}).get("unit", "char")
    bits = "bpc" if unit == "char" else "bits/byte"
    if math.isfinite(best):
        click.echo(f"val loss: last {last:.4f} nats/{unit} ({nats_to_bits(last):.4f} {bits}), "
                   f"best {best:.4f} nats/{unit} ({nats_to_bits(best):.4f} {bits})")
    else:
        click.echo("val loss: not evaluated yet")
    chars = ckpt["vocab"] if isinstance(ckpt["vocab"], str) else None
    click.echo(f"parameters: {params:,}; " + (
        f"vocab_size {len(chars)}: {chars[:80]!r}{'...' if len(chars) > 80 else ''}"
        if chars is not None else "vocab_size 256 (bytes, data.unit byte)"))
    click.echo("config:\n" + yaml.safe_dump(ckpt["config"], sort_keys=False).rstrip())
    if gates:
        import torch

        from charlm.inspection import format_gates, gate_statistics, split_text
        from charlm.run import load_model

        model, vocab, cfg = load_model(ckpt, torch.device("cpu"))
        stats = gate_statistics(model, split_text(vocab, cfg, None, "val"))
        click.echo("gate saturation (val split):\n" + format_gates(stats))


@click.command()
@click.argument("checkpoints", nargs=-1)
@click.option("--cell", "cells", default="rnn,lstm,gru", show_default=True,
              help="Fresh (untrained) models to measure when no CHECKPOINT is given.")
@click.option("--data", default=None, help=h("Text to measure on.",
                                              "pystdlib, or each checkpoint's corpus"))
@click.option("--horizon", type=click.IntRange(1, 5000), default=200, show_default=True,
              help="K: the furthest step back.")
@click.option("--windows", type=click.IntRange(min=1), default=32, show_default=True,
              help="Text windows averaged over.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Size of the fresh models.")
@click.option("--num-layers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", default="runs/gradflow", show_default=True,
              help="Folder for gradflow.csv, gradflow.png and TensorBoard scalars.")
def gradflow(checkpoints, cells, data, horizon, windows, hidden_size, num_layers, seed,
             out) -> None:
    """Measure ||dL_T/dh_(T-k)|| for k = 0..K on real text: how far back gradients reach.

    With CHECKPOINTs, their trained models; without, fresh models of each --cell.
    """
    from charlm.gradflow import format_table, write_outputs
    from charlm.inspection import checkpoint_profiles, fresh_profiles

    if checkpoints:
        profiles = checkpoint_profiles(checkpoints, data, horizon, windows, seed)
    else:
        names = [c.strip() for c in cells.split(",") if c.strip()]
        profiles = fresh_profiles(names, data or "pystdlib", horizon, windows, hidden_size,
                                  num_layers, seed)
    click.echo(format_table(profiles))
    from pathlib import Path

    where = Path(data).name if data else "each checkpoint's val split" if checkpoints else \
        "pystdlib"
    try:
        written = write_outputs(profiles, out, f"gradient flow through time ({where})")
    except OSError as exc:
        raise click.ClickException(f"cannot write to {out}: {exc.strerror}; choose another "
                                   f"--out folder") from None
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"TensorBoard: tensorboard --logdir {out}")


@click.command()
@click.argument("checkpoint")
@click.option("--text", "text_file", type=click.Path(dir_okay=False),
              help="A file holding the passage to show.")
@click.option("--data", help=h("Corpus whose val split gives the passage.",
                                "the checkpoint's corpus"))
@click.option("--length", type=click.IntRange(min=10), default=1500, show_default=True,
              help="Characters of the passage.")
@click.option("--unit", "units", multiple=True, metavar="LAYER:INDEX",
              help="Unit to colour by (cell state for an LSTM; hL:i / cL:i to choose); "
                   "repeatable. Default: the best match for each text property.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="Units listed per text property.")
@click.option("--out", default="visualize.html", show_default=True,
              type=click.Path(dir_okay=False))
def visualize(checkpoint, text_file, data, length, units, top, out) -> None:
    """Write an HTML page colouring a passage by the activation of hidden or cell units."""
    from charlm.corpora import load_text
    from charlm.inspection import split_text
    from charlm.visualize import activations, best_units, parse_unit, render_html, \
        text_features

    _, model, vocab, cfg, _ = load_model_for(checkpoint, "checkpoints", "cpu")
    if vocab.unit != "char":
        raise click.ClickException("visualize colours one character per model step; this "
                                   "model reads bytes (data.unit byte), which it does not "
                                   "support; use charlm inspect --gates or gradflow")
    if text_file:
        ids = vocab.encode(load_text(text_file)[:length])
    else:
        ids = split_text(vocab, cfg, data, "val")[:length]
    text = vocab.decode(ids)
    acts = activations(model, ids)
    matches = best_units(acts, text_features(text), top)
    chosen = [parse_unit(u, acts) for u in units] or list(dict.fromkeys(
        next(m.unit for m in matches if m.feature == f) for f in dict.fromkeys(
            m.feature for m in matches)))
    m = cfg.model
    title = f"{m.cell.upper()} {m.num_layers}x{m.hidden_size}: {checkpoint}"
    try:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(render_html(text, acts, chosen, matches, title))
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    for m in matches:
        click.echo(f"{m.feature:>17}: {m.unit:<8} r = {m.r:+.3f}")
    click.echo(f"wrote {out} ({len(text)} characters, units {', '.join(chosen)})")
