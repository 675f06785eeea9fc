"""``charlm eval``: the loss of a checkpoint over a whole split, static or dynamic (no
training code)."""

from __future__ import annotations

import json

import click

from charlm.cli.common import (
    cache_option,
    checkpoint_options,
    h,
    open_model,
    read_corpus,
)


@click.command("eval")
@checkpoint_options()
@click.option("--data", help=h("Corpus to score.", "the checkpoint's corpus"))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="val",
              show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help=h("Streams scored in parallel.", "train.eval_batch_size"))
@click.option("--encoding", help=h("Text encoding of --data.", "the checkpoint's"))
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--dynamic", is_flag=True,
              help="Dynamic evaluation (Krause et al. 2018): read the split as one stream and "
                   "after scoring each segment take a gradient step on it.")
@click.option("--dynamic-method", type=click.Choice(["sgd", "rms"]), default=None,
              help=h("sgd, or rms: steps divided by the gradients' RMS on training text.",
                     "rms"))
@click.option("--dynamic-lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help=h("η, the step size.", "0.0005 for rms, 0.1 for sgd"))
@click.option("--dynamic-decay", type=click.FloatRange(0, 1), default=None,
              help=h("λ, the pull back toward the trained weights at each step.",
                     "0.02 for rms, 0 for sgd"))
@click.option("--dynamic-seq-len", type=click.IntRange(min=1), default=None,
              help=h("n, characters per segment (one update each).", "50"))
def eval_(checkpoint, checkpoint_dir, device, data, split, batch_size, encoding, cache_dir,
          as_json, dynamic, dynamic_method, dynamic_lr, dynamic_decay, dynamic_seq_len) -> None:
    """Loss (nats/char), bpc and perplexity of CHECKPOINT over a whole split.

    CHECKPOINT is a .pt file, a run folder, a run name or 'latest' (default: the newest run).
    The split boundaries come from the checkpoint's config; the state is carried through the
    split, each of the parallel streams first reading the 512 characters before it. With
    --dynamic the figure is dynamic evaluation's, never mixed with the static one: compare
    with a run without --dynamic.
    """
    import time

    from charlm.evaluation.static import evaluate, scorable

    dynamic = dynamic_settings(dynamic, dynamic_method, dynamic_lr, dynamic_decay,
                               dynamic_seq_len, batch_size)
    path, _, model, vocab, cfg, _ = open_model(checkpoint, checkpoint_dir, device)
    corpus = data or cfg.data.corpus
    loaded = read_corpus(cfg.data, vocab, cache_dir, corpus=corpus, encoding=encoding)
    d = cfg.data
    ids = scorable(loaded.splits[split], f"the {split} split of {corpus}", d.unit,
                   len(loaded.ids), f"this run's data.train_frac {d.train_frac:g} and "
                   f"data.val_frac {d.val_frac:g} leave too little for it; evaluate another "
                   f"--split, or longer text with --data")
    start = time.perf_counter()
    streams = batch_size or cfg.train.eval_batch_size
    with eval_guard(cfg, streams, dynamic):
        if dynamic is None:
            loss, n = evaluate(model, ids, streams, cfg.train.seq_len)
            protocol = {"protocol": "static"}
        else:
            from charlm.evaluation.dynamic import dynamic_evaluate

            found = dynamic_evaluate(model, ids, dynamic, train_ids=loaded.splits["train"])
            loss, n = found.loss_nats, found.chars
            protocol = {"protocol": "dynamic", "dynamic": dynamic.to_dict()}
    report({"checkpoint": str(path), "corpus": corpus, "split": split, "chars": n,
            "unit": cfg.data.unit, "loss_nats": loss, **protocol,
            "elapsed_s": round(time.perf_counter() - start, 3)}, as_json)


def eval_guard(cfg, streams: int, dynamic):
    """:func:`~charlm.system.memory.allocation_guard` for an evaluation: an allocation failure
    is one line naming its sizes and the option that lowers them."""
    from charlm.system.memory import allocation_guard

    H = cfg.model.hidden_size
    if dynamic is None:
        return allocation_guard("evaluating", f"batch_size {streams}, seq_len "
                                f"{cfg.train.seq_len}, hidden_size {H}", "lower --batch-size")
    return allocation_guard("evaluating dynamically", f"seq_len {dynamic.seq_len}, hidden_size "
                            f"{H}", "lower --dynamic-seq-len")


def dynamic_settings(dynamic: bool, method, lr, decay, seq_len, batch_size):
    """The :class:`~charlm.dynamic.DynamicSettings` that ``--dynamic*`` ask for, or None.

    Raises:
        OptionError: for a ``--dynamic-*`` option without ``--dynamic``, or ``--batch-size``
            with it.
    """
    from charlm.errors import OptionError

    given = {"--dynamic-method": method, "--dynamic-lr": lr, "--dynamic-decay": decay,
             "--dynamic-seq-len": seq_len}
    if not dynamic:
        stray = [name for name, value in given.items() if value is not None]
        if stray:
            raise OptionError(f"{', '.join(stray)}: for dynamic evaluation only; add "
                              f"--dynamic")
        return None
    if batch_size is not None:
        raise OptionError("--dynamic reads the split as one stream (batch 1): drop "
                          "--batch-size")
    from charlm.evaluation.dynamic import DEFAULTS, SEQ_LEN, DynamicSettings

    method = method or "rms"
    return DynamicSettings(method, DEFAULTS[method][0] if lr is None else lr,
                           DEFAULTS[method][1] if decay is None else decay,
                           seq_len or SEQ_LEN)


def report(result: dict, as_json: bool) -> None:
    """Print an evaluation: one JSON object, or one line naming the protocol."""
    from charlm.metrics import bits_unit, loss_unit, nats_to_bits, perplexity

    loss, unit = result["loss_nats"], result["unit"]
    result |= {"bpc": nats_to_bits(loss), "perplexity": perplexity(loss)}
    if as_json:
        click.echo(json.dumps(result))
        return
    how = ""
    if result["protocol"] == "dynamic":
        s = result["dynamic"]
        how = (f" (dynamic evaluation: {s['method']}, lr {s['lr']:g}, decay {s['decay']:g}, "
               f"seq_len {s['seq_len']}; {result['elapsed_s']:.1f} s)")
    click.echo(f"{result['split']}{how}: loss {loss:.4f} {loss_unit(unit)}, {result['bpc']:.4f} "
               f"{bits_unit(unit)}, perplexity {result['perplexity']:.3f} over "
               f"{result['chars']:,} {unit}s ({result['checkpoint']})")
