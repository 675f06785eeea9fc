"""``charlm sample`` and ``charlm eval``: use a trained checkpoint (no training code)."""

from __future__ import annotations

import json
import logging
import secrets

import click

from charlm.cli.common import (
    cache_option,
    checkpoint_options,
    h,
    open_model,
    output_option,
    read_corpus,
    text_out,
)


@click.command()
@checkpoint_options()
@click.option("--length", type=int,
              help=h("Characters to generate (bytes for a data.unit byte model).",
                     "checkpoint's sample.length (500)"))
@click.option("--temperature", type=float,
              help=h("0 is greedy (argmax).", "checkpoint's sample.temperature (0.8)"))
@click.option("--top-k", type=int, help=h("Keep the k most likely characters.", "off"))
@click.option("--top-p", type=float, help=h("Nucleus sampling mass in (0, 1].", "off"))
@click.option("--prime", default=None,
              help=h("Text to start from; printed first.", "a newline, not printed"))
@click.option("--drop-unknown", is_flag=True,
              help="Drop priming characters the model never saw instead of stopping.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None, help=h("", "random"))
@click.option("--num-samples", type=click.IntRange(min=1), default=1)
@output_option("Write the text to this file (always UTF-8) instead of stdout.")
def sample(checkpoint, checkpoint_dir, device, length, temperature, top_k, top_p, prime,
           drop_unknown, seed, num_samples, output) -> None:
    """Generate text from CHECKPOINT (a .pt file, a run folder, a run name or 'latest').

    Without CHECKPOINT, the best checkpoint of the newest run under checkpoints/ is used. On a
    terminal whose encoding cannot show a character, it is printed as an escape (\\uXXXX);
    --output always writes exact UTF-8.
    """
    import torch

    from charlm.sampling import check_options, generate, prepare_prime

    _, _, model, vocab, cfg, dev = open_model(checkpoint, checkpoint_dir, device)
    s = cfg.sample
    length = s.length if length is None else length
    temperature = s.temperature if temperature is None else temperature
    top_k, top_p = (s.top_k if top_k is None else top_k), (s.top_p if top_p is None else top_p)
    check_options(vocab.size, temperature, top_k, top_p, length)
    shown, prime_ids = prepare_prime(vocab, prime, drop_unknown)
    if seed is None:  # drawn, and said, so that a good sample can be had again
        seed = secrets.randbelow(2**63)
        logging.getLogger("charlm.sampling").info("seed %d (--seed %d gives this sample "
                                                  "again)", seed, seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    steps = generate(model, prime_ids.to(dev), length, num_samples, temperature, top_k, top_p,
                     gen)
    with text_out(output) as out:
        if num_samples == 1:  # stream as the ids come (bytes: whole UTF-8 sequences)
            out.write(shown)
            decode = vocab.stream_decoder()
            for ids in steps:
                out.write(decode([int(ids[0])]))
                out.flush()
            out.write(decode([], True) + "\n")
            return
        rows = torch.stack(list(steps), 1).tolist() if length else [[]] * num_samples
        for i, row in enumerate(rows):
            out.write(("\n" if i else "") + shown + vocab.decode(row) + "\n")


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
def eval_(checkpoint, checkpoint_dir, device, data, split, batch_size, encoding, cache_dir,
          as_json) -> None:
    """Loss (nats/char), bpc and perplexity of CHECKPOINT over a whole split.

    CHECKPOINT is a .pt file, a run folder, a run name or 'latest' (default: the newest run).
    The split boundaries come from the checkpoint's config; the state is carried through the
    split, each of the parallel streams first reading the 512 characters before it.
    """
    from charlm.evaluation import evaluate
    from charlm.metrics import bits_unit, loss_unit, nats_to_bits, perplexity, unit_noun

    path, _, model, vocab, cfg, _ = open_model(checkpoint, checkpoint_dir, device)
    d = cfg.data
    corpus = data or d.corpus
    loaded = read_corpus(d, vocab, cache_dir, corpus=corpus, encoding=encoding)
    ids, noun = loaded.splits[split], unit_noun(d.unit)
    if len(loaded.ids) < 2:
        raise click.ClickException(f"{corpus} holds {len(loaded.ids)} {noun}(s); scoring needs "
                                   f"at least 2 (one to read, one to predict): give longer text "
                                   f"with --data")
    if len(ids) < 2:
        raise click.ClickException(
            f"the {split} split of {corpus} "
            f"{'is empty' if not len(ids) else f'has only 1 {noun}'} ({len(loaded.ids)} in "
            f"all): this run's data.train_frac {d.train_frac:g} and data.val_frac "
            f"{d.val_frac:g} leave too little for it; evaluate another --split or longer --data")
    loss, n = evaluate(model, ids, batch_size or cfg.train.eval_batch_size, cfg.train.seq_len)
    unit = d.unit
    result = {"checkpoint": str(path), "corpus": corpus, "split": split, "chars": n,
              "unit": unit, "loss_nats": loss, "bpc": nats_to_bits(loss),
              "perplexity": perplexity(loss)}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{split}: loss {loss:.4f} {loss_unit(unit)}, {result['bpc']:.4f} "
               f"{bits_unit(unit)}, perplexity {result['perplexity']:.3f} over {n:,} {unit}s "
               f"({path})")
