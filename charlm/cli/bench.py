"""``charlm bench``: throughput on this machine (also ``python scripts/bench.py``)."""

from __future__ import annotations

import click


@click.command()
@click.option("--data", default="pystdlib", show_default=True, help="Corpus to train on.")
@click.option("--sizes", default="128,256,512,1024", show_default=True,
              help="hidden_size values (L = 2, B = 64, T = 128).")
@click.option("--cells", default="lstm,gru,rnn", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed steps per measurement (after 2 warm-up steps).")
@click.option("--out", default="bench.json", show_default=True, type=click.Path(dir_okay=False),
              help="JSON report.")
def bench(data, sizes, cells, steps, out) -> None:
    """Measure GEMM ceiling, training chars/s (charlm vs a bare PyTorch loop), evaluation and
    sampling chars/s, and peak memory; print a table and write JSON."""
    from charlm.bench import run
    from charlm.corpora import load_text
    from charlm.data import Vocab

    text = load_text(data)
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text[:2_000_000])
    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{sizes!r}; give integers like 256,512",
                                 param_hint="--sizes") from None
    cell_list = [c.strip() for c in cells.split(",") if c.strip()]
    bad = [c for c in cell_list if c not in ("lstm", "gru", "rnn")]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}; choose from lstm, gru, rnn",
                                 param_hint="--cells")
    run(ids, vocab.size, size_list, cell_list, steps, out, echo=click.echo)
