"""``charlm bench``: throughput on this machine (also ``python scripts/bench.py``)."""

from __future__ import annotations

import click

from charlm.cell_table import cell_names
from charlm.cli.common import cache_option, output_option, read_corpus


@click.command()
@click.option("--data", default="pystdlib", show_default=True, help="Corpus to train on.")
@click.option("--sizes", default="128,256,512,1024", show_default=True,
              help="hidden_size values (L = 2, B = 64, T = 128).")
@click.option("--cells", default="lstm,gru,rnn", show_default=True,
              help="Comma-separated cells of the cell table.")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed steps per measurement (after 2 warm-up steps).")
@cache_option
@output_option("JSON report.", default="bench.json")
def bench(data, sizes, cells, steps, cache_dir, output) -> None:
    """Measure GEMM ceiling, training chars/s (charlm vs a bare PyTorch loop), evaluation and
    sampling chars/s, and peak memory; print a table and write JSON."""
    from charlm.bench import run
    from charlm.config import DataConfig

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{sizes!r}; give integers like 256,512",
                                 param_hint="--sizes") from None
    cell_list = [c.strip() for c in cells.split(",") if c.strip()]
    bad = [c for c in cell_list if c not in cell_names()]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}; choose from {', '.join(cell_names())}",
                                 param_hint="--cells")
    corpus = read_corpus(DataConfig(), None, cache_dir, corpus=data)
    ids = corpus.ids[:2_000_000]
    run(ids, corpus.vocab.size, size_list, cell_list, steps, output, echo=click.echo)
