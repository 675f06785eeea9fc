"""``charlm inspect``, ``gradflow`` and ``visualize``: look inside checkpoints and models
(no training code)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from charlm.cli.common import (
    cache_option,
    checkpoint_options,
    h,
    open_model,
    output_option,
    read_corpus,
)
from charlm.config.cells import cell_names, parse_cells
from charlm.system.files import replacing


@click.command()
@checkpoint_options()
@click.option("--gates", is_flag=True, help="Also measure gate saturation on the val split.")
@click.option("--projector", is_flag=True,
              help="Also write the character embedding for TensorBoard's PROJECTOR.")
@cache_option
@output_option("Folder for the --projector files.", default=None, dir_okay=True)
def inspect(checkpoint, checkpoint_dir, device, gates, projector, cache_dir, output) -> None:
    """Print what CHECKPOINT holds: config, vocabulary, step, val figures, size, versions.

    CHECKPOINT is a .pt file, a run folder (its last.pt), a run name or 'latest' (default:
    the newest run). --projector writes the embedding, each row labelled by its character,
    to --output (default: the run's TensorBoard folder, runs/<run>/).
    """
    import yaml

    from charlm.metrics import describe_loss
    from charlm.store.folders import BEST, LAST

    path, ckpt, model, vocab, cfg, _ = open_model(checkpoint, checkpoint_dir, device,
                                                  prefer=(LAST, BEST))
    st = ckpt["state"]
    best, last = st.get("best_val_loss", math.nan), st.get("last_val_loss", math.nan)
    click.echo(f"checkpoint: {path} (format {ckpt['format_version']})")
    click.echo("versions: " + ", ".join(f"{k} {v}" for k, v in ckpt["versions"].items()))
    click.echo(f"step {st.get('step')}, epoch {st.get('epoch')}, "
               f"{st.get('elapsed_s', 0):.1f} s trained, "
               f"{st.get('nonfinite_steps', 0)} non-finite steps skipped")
    unit = cfg.data.unit
    click.echo(f"val loss: last {describe_loss(last, unit)}; best {describe_loss(best, unit)}"
               if math.isfinite(best) else "val loss: not evaluated yet")
    chars = getattr(vocab, "chars", None)
    click.echo(f"parameters: {model.num_parameters():,}; " + (
        f"vocab_size {len(chars)}: {chars[:80]!r}{'...' if len(chars) > 80 else ''}"
        if chars is not None else "vocab_size 256 (bytes, data.unit byte)"))
    click.echo("config:\n" + yaml.safe_dump(ckpt["config"], sort_keys=False).rstrip())
    if gates:
        from charlm.analysis.gates import format_gates, gate_statistics

        val = read_corpus(cfg.data, vocab, cache_dir).splits["val"]
        click.echo("gate saturation (val split):\n" + format_gates(gate_statistics(model, val)))
    if projector:
        where = output or str(Path(cfg.train.log_dir) / cfg.train.run_name)
        _write_projector(model, vocab, where, st.get("step", 0))
        click.echo(f"wrote the embedding to {where}; view it with: tensorboard --logdir {where}")


def _write_projector(model, vocab, folder: str, step: int) -> None:
    """The (V, E) embedding with a label per row, for TensorBoard's PROJECTOR.

    Raises:
        OutputError: if ``folder`` cannot be written.
    """
    from charlm.data.vocab import id_labels
    from charlm.errors import OutputError
    from charlm.system.files import refuse_saved_state
    from charlm.system.tensorboard import log_embedding, open_writer

    refuse_saved_state(Path(folder) / "projector_config.pbtxt", "choose another --output")
    if (Path(folder) / f"{step:05d}" / "char_embedding").is_dir():
        return  # the end of the run wrote it already
    writer = open_writer(folder)
    try:
        log_embedding(writer, model.embedding.weight, id_labels(vocab), step)
    finally:
        writer.close()
    if writer.failed:
        raise OutputError(f"cannot write to {folder}; choose another --output")


@click.command()
@checkpoint_options(many=True, device="cpu")
@click.option("--cell", "cells", default=",".join(cell_names()), show_default=True,
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
@cache_option
@output_option("Folder for gradflow.csv, gradflow.png and TensorBoard scalars.",
               default="runs/gradflow", dir_okay=True)
def gradflow(checkpoints, checkpoint_dir, device, cells, data, horizon, windows, hidden_size,
             num_layers, seed, cache_dir, output) -> None:
    """Measure ||dL_T/dh_(T-k)|| for k = 0..K on real text: how far back gradients reach.

    With CHECKPOINTs, their trained models; without, fresh models of each --cell.
    """
    from pathlib import Path

    from charlm.analysis.gradflow import format_table, write_outputs

    if checkpoints:
        profiles = _trained_profiles(checkpoints, checkpoint_dir, device, data, cache_dir,
                                     horizon, windows, seed)
    else:
        profiles = _fresh_profiles(cells, data, cache_dir, horizon, windows, hidden_size,
                                   num_layers, seed)
    click.echo(format_table(profiles))
    where = Path(data).name if data else "each checkpoint's val split" if checkpoints else \
        "pystdlib"
    for path in write_outputs(profiles, output, f"gradient flow through time ({where})"):
        click.echo(f"wrote {path}")
    click.echo(f"TensorBoard: tensorboard --logdir {output}")


def _fresh_profiles(cells, data, cache_dir, horizon, windows, hidden_size, num_layers, seed):
    """Profiles of untrained models of each named cell, on ``data`` (default pystdlib)."""
    from charlm.analysis.gradflow import fresh_profiles
    from charlm.config import DataConfig

    names = parse_cells(cells, "--cell")
    corpus = read_corpus(DataConfig(), None, cache_dir, corpus=data)
    return fresh_profiles(names, corpus.ids, corpus.vocab.size, horizon, windows,
                          hidden_size, num_layers, seed)


def _trained_profiles(checkpoints, checkpoint_dir, device, data, cache_dir, horizon, windows,
                      seed):
    """Profiles of trained checkpoints, each on its own corpus's val split (or ``data``)."""
    from pathlib import Path

    from charlm.analysis.gradflow import model_profile

    profiles = {}
    for target in checkpoints:
        path, _, model, vocab, cfg, _ = open_model(target, checkpoint_dir, device)
        val = read_corpus(cfg.data, vocab, cache_dir, corpus=data).splits["val"]
        label = f"{Path(path).parent.name}/{Path(path).stem} ({cfg.model.cell})"
        n = 1
        while any(k == label or k.startswith(f"{label} (closed form)") for k in profiles):
            n += 1  # two runs with the same folder name: keep both curves apart
            label = f"{Path(path).parent.name}/{Path(path).stem} ({cfg.model.cell}) #{n}"
        profiles |= model_profile(model, val, horizon, windows, seed, label=label)
    return profiles


@click.command()
@checkpoint_options(device="cpu")
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
@cache_option
@output_option("The HTML page to write.", default="visualize.html")
def visualize(checkpoint, checkpoint_dir, device, text_file, data, length, units, top,
              cache_dir, output) -> None:
    """Write an HTML page colouring a passage by the activation of hidden or cell units.

    CHECKPOINT is a .pt file, a run folder, a run name or 'latest' (default: the newest run).
    """
    from charlm.analysis.units import (
        activations,
        best_units,
        choose_units,
        render_html,
        text_features,
    )

    path, _, model, vocab, cfg, _ = open_model(checkpoint, checkpoint_dir, device)
    if vocab.unit != "char":
        from charlm.errors import OptionError

        raise OptionError("visualize colours one character per model step; this model reads "
                          "bytes (data.unit byte), which it does not support; use charlm "
                          "inspect --gates or gradflow")
    corpus = read_corpus(cfg.data, vocab, cache_dir, corpus=text_file or data)
    ids = (corpus.ids if text_file else corpus.splits["val"])[:length]
    text = vocab.decode(ids)
    acts = activations(model, ids)
    matches = best_units(acts, text_features(text), top)
    chosen = choose_units(units, acts, matches)
    m = cfg.model
    title = f"{m.cell.upper()} {m.num_layers}x{m.hidden_size}: {path}"
    with replacing(output) as fh:
        fh.write(render_html(text, acts, chosen, matches, title))
    for match in matches:
        click.echo(f"{match.feature:>17}: {match.unit:<8} r = {match.r:+.3f}")
    click.echo(f"wrote {output} ({len(text)} characters, units {', '.join(chosen)})")
