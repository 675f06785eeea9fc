"""``charlm bench``: throughput on this machine (also ``python scripts/bench.py``)."""

from __future__ import annotations

import click

from charlm.cli.common import cache_option, h, output_option, read_corpus
from charlm.config.cells import parse_cells
from charlm.errors import shorten

# Sizes that fill the device: a GPU needs wider layers and larger batches to be busy.
SIZES = {"cpu": "128,256,512,1024", "cuda": "256,1024,2048"}
BATCH = {"cpu": 64, "cuda": 128}


@click.command()
@click.option("--data", default="pystdlib", show_default=True, help="Corpus to train on.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True, help="bf16: forward passes under bfloat16 autocast.")
@click.option("--sizes", help=h("hidden_size values (L = 2).",
                                f"{SIZES['cpu']} on a CPU, {SIZES['cuda']} on a GPU"))
@click.option("--batch-size", type=click.IntRange(min=1),
              help=h("Streams B.", f"{BATCH['cpu']} on a CPU, {BATCH['cuda']} on a GPU"))
@click.option("--seq-len", type=click.IntRange(min=1), default=128, show_default=True,
              help="BPTT length T.")
@click.option("--cells", default="lstm,gru,rnn", show_default=True,
              help="Comma-separated cells of the cell table.")
@click.option("--equal-params", is_flag=True,
              help="Read --sizes as LSTM hidden sizes and run every cell at the hidden size "
                   "with the same parameter count.")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed steps of each loop (after 2 warm-up steps), in up to 3 rounds that "
                   "alternate the loops; each loop's fastest round counts.")
@cache_option
@output_option("JSON report.", default="bench.json")
def bench(data, device, precision, sizes, batch_size, seq_len, cells, equal_params, steps,
          cache_dir, output) -> None:
    """Measure the matmul ceiling, training chars/s (charlm vs a bare PyTorch loop) and model
    FLOP/s, evaluation and sampling chars/s, and peak memory; print a table and write JSON.
    On a GPU every timing follows a device synchronisation."""
    from charlm.config import DataConfig
    from charlm.system.device import cpu_has_bf16, resolve_device
    from charlm.training.bench import run

    dev = resolve_device(device)
    kind = "cuda" if dev.type == "cuda" else "cpu"
    size_list = _integers(sizes or SIZES[kind], "--sizes")
    cell_list = list(parse_cells(cells, "--cells"))
    if precision == "bf16" and dev.type == "cpu" and "lstm" in cell_list and not cpu_has_bf16():
        from charlm.errors import OptionError

        raise OptionError("--precision bf16: this CPU has no bfloat16 kernels for the LSTM "
                          "(oneDNN needs AVX-512 BF16 or AMX); drop lstm from --cells, or use "
                          "--precision fp32")
    corpus = read_corpus(DataConfig(), None, cache_dir, corpus=data)
    run(corpus.ids[:2_000_000], corpus.vocab.size, size_list, cell_list, steps, output,
        echo=click.echo, device=dev, precision=precision, batch_size=batch_size or BATCH[kind],
        seq_len=seq_len, equal_params=equal_params)


def _integers(text: str, option: str) -> list[int]:
    """The positive integers of a comma list (``256,512``).

    Raises:
        OptionError: naming ``option``.
    """
    from charlm.errors import OptionError

    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise OptionError(f"{option} {shorten(text)}: give positive integers like 256,512")
    return values
