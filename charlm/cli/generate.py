"""``charlm sample`` (sampling, stop strings, beam search, interactive) and ``charlm eval``
(static and dynamic): use a trained checkpoint (no training code)."""

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
    stream_continuation,
    text_out,
)
from charlm.metrics import unit_noun

logger = logging.getLogger(__name__)


@click.command()
@checkpoint_options()
@click.option("--length", type=int,
              help=h("Characters to generate (bytes for a data.unit byte model); with --stop "
                     "or --max-lines, at most this many.", "checkpoint's sample.length (500)"))
@click.option("--temperature", type=float,
              help=h("0 is greedy (argmax).", "checkpoint's sample.temperature (0.8)"))
@click.option("--top-k", type=int, help=h("Keep the k most likely characters.", "off"))
@click.option("--top-p", type=float, help=h("Nucleus sampling mass in (0, 1].", "off"))
@click.option("--prime", default=None,
              help=h("Text to start from; printed first.", "a newline, not printed"))
@click.option("--drop-unknown", is_flag=True,
              help="Drop priming characters the model never saw instead of stopping.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None, help=h("", "random"))
@click.option("--num-samples", type=click.IntRange(min=1), default=1,
              help="Samples generated together; each stops on its own.")
@click.option("--stop", "stops", multiple=True, metavar="STRING",
              help="End a sample right after the first occurrence of STRING in its "
                   "continuation; repeatable (the first to occur ends it). In bash, "
                   "$'\\n\\n' is a blank line.")
@click.option("--strip-stop", is_flag=True, help="Leave the stop string out of the output.")
@click.option("--max-lines", type=click.IntRange(min=1), default=None,
              help=h("End a sample after N newlines of its continuation.", "no limit"))
@click.option("--beam-width", type=click.IntRange(min=1), default=None,
              help=h("Beam search with W beams (1 is greedy): the most probable text instead "
                     "of a random one; --num-samples N <= W prints the N best with their "
                     "log-probabilities.", "off (sample)"))
@click.option("--length-penalty", type=click.FloatRange(min=0), default=None, metavar="ALPHA",
              help=h("Rank beams by log-probability / ((5 + n) / 6) ** ALPHA; it matters "
                     "only when --stop or --max-lines end beams at different lengths.", "0"))
@click.option("--interactive", is_flag=True,
              help="Read a prime per line from the terminal and stream each continuation; "
                   "/help lists the commands (/keep, /reset, /temp, /topk, /quit).")
@output_option("Write the text to this file (always UTF-8) instead of stdout.")
def sample(checkpoint, checkpoint_dir, device, length, temperature, top_k, top_p, prime,
           drop_unknown, seed, num_samples, stops, strip_stop, max_lines, beam_width,
           length_penalty, interactive, output) -> None:
    """Generate text from CHECKPOINT (a .pt file, a run folder, a run name or 'latest').

    Without CHECKPOINT, the best checkpoint of the newest run under checkpoints/ is used. On a
    terminal whose encoding cannot show a character, it is printed as an escape (\\uXXXX);
    --output always writes exact UTF-8.
    """
    from charlm.generation.sampling import check_options, make_stop_rule, prepare_prime

    check_combinations(click.get_current_context().params)
    _, _, model, vocab, cfg, dev = open_model(checkpoint, checkpoint_dir, device)
    s = cfg.sample
    length = s.length if length is None else length
    rule = make_stop_rule(vocab, stops, max_lines)
    if beam_width:
        check_options(vocab.size, 0.0, None, None, length)
        shown, prime_ids = prepare_prime(vocab, prime, drop_unknown)
        with text_out(output) as out:
            return write_beams(out, model, shown, prime_ids.to(dev), length, beam_width,
                               num_samples, length_penalty or 0.0, rule, strip_stop, vocab)
    temperature = s.temperature if temperature is None else temperature
    top_k, top_p = (s.top_k if top_k is None else top_k), (s.top_p if top_p is None else top_p)
    check_options(vocab.size, temperature, top_k, top_p, length)
    picks = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=seeded(seed, dev))
    if interactive:
        from charlm.cli.interactive import Session, run_session

        return run_session(Session(model, vocab, dev, length, rule, strip_stop, drop_unknown,
                                   picks))
    shown, prime_ids = prepare_prime(vocab, prime, drop_unknown)
    with text_out(output) as out:
        write_samples(out, model, shown, prime_ids.to(dev), length, num_samples, picks, rule,
                      strip_stop, vocab)


def check_combinations(given: dict) -> None:
    """Refuse options of ``charlm sample`` that make no sense together.

    Args:
        given: the command's parameters by name (click's ``ctx.params``).
    Raises:
        OptionError: one line naming the options.
    """
    from charlm.errors import OptionError

    drawn = [f"--{name.replace('_', '-')}" for name in ("temperature", "top_k", "top_p", "seed")
             if given[name] is not None]
    width, n = given["beam_width"], given["num_samples"]
    refused = [
        (width and drawn, f"--beam-width searches for the most probable text and draws nothing "
                          f"at random: drop {', '.join(drawn)}"),
        (width and n > width, f"--num-samples {n} is more than --beam-width {width}: beam "
                              f"search keeps {width} beams; raise --beam-width or lower "
                              f"--num-samples"),
        (given["length_penalty"] is not None and not width,
         "--length-penalty ranks beams: it needs --beam-width"),
        (given["interactive"] and width, "--interactive samples; it cannot be combined with "
                                         "--beam-width"),
        (given["interactive"] and n > 1, "--interactive writes one sample at a time: drop "
                                         "--num-samples"),
        (given["interactive"] and given["output"], "--interactive writes to the terminal: "
                                                   "drop --output"),
        (given["interactive"] and given["prime"] is not None,
         "--interactive reads its primes from the terminal: drop --prime"),
        (given["strip_stop"] and not given["stops"], "--strip-stop leaves out the stop string: "
                                                     "it needs --stop STRING"),
    ]
    for bad, message in refused:
        if bad:
            raise OptionError(message)


def seeded(seed: int | None, dev):
    """A torch RNG on ``dev`` seeded with ``seed``, or with a drawn seed that is logged so
    that a good sample can be had again."""
    import torch

    if seed is None:
        seed = secrets.randbelow(2**63)
        logging.getLogger("charlm.generation.sampling").info("seed %d (--seed %d gives this sample "
                                                  "again)", seed, seed)
    return torch.Generator(device=dev).manual_seed(seed)


def write_samples(out, model, shown: str, prime_ids, length: int, num_samples: int,
                  picks: dict, rule, strip: bool, vocab) -> None:
    """Sample and write: one sample streams as it comes; several are generated together
    and written when all have ended, a blank line between them."""
    from charlm.generation.sampling import continuations, generate

    steps = generate(model, prime_ids, length, num_samples, **picks)
    if num_samples == 1:
        return stream_continuation(out, shown, (int(ids[0]) for ids in steps), vocab, rule,
                                   strip)
    for i, row in enumerate(continuations(steps, num_samples, rule, strip)):
        text = shown + vocab.decode(row)
        out.write(("\n" if i else "") + text + ("" if text.endswith("\n") else "\n"))


def write_beams(out, model, shown: str, prime_ids, length: int, width: int, count: int,
                alpha: float, rule, strip: bool, vocab) -> None:
    """Beam search and write the ``count`` best beams; several get a header line each with
    their log-probability (one beam's goes to the log)."""
    from charlm.generation.beam import beam_search

    beams = beam_search(model, prime_ids, length, width, count, alpha, rule)
    for i, beam in enumerate(beams):
        ids = list(beam.ids)
        if strip:
            ids = ids[:len(ids) - (rule.match(ids) or 0)]
        text = shown + vocab.decode(ids)
        if count == 1:
            logger.info("beam search, width %d: log-probability %.4f nats over %d %s(s)",
                        width, beam.logprob, len(beam.ids), unit_noun(vocab.unit))
        else:
            out.write(("\n" if i else "") + f"# beam {i + 1} of {len(beams)}: log-probability "
                      f"{beam.logprob:.4f} nats" + (f", score {beam.score:.4f}" if alpha else "")
                      + "\n")
        out.write(text + ("" if text.endswith("\n") else "\n"))


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

    from charlm.evaluation.static import evaluate

    dynamic = dynamic_settings(dynamic, dynamic_method, dynamic_lr, dynamic_decay,
                               dynamic_seq_len, batch_size)
    path, _, model, vocab, cfg, _ = open_model(checkpoint, checkpoint_dir, device)
    corpus = data or cfg.data.corpus
    loaded = read_corpus(cfg.data, vocab, cache_dir, corpus=corpus, encoding=encoding)
    ids = check_split(loaded, split, corpus, cfg.data)
    start = time.perf_counter()
    if dynamic is None:
        loss, n = evaluate(model, ids, batch_size or cfg.train.eval_batch_size, cfg.train.seq_len)
        protocol = {"protocol": "static"}
    else:
        from charlm.evaluation.dynamic import dynamic_evaluate

        found = dynamic_evaluate(model, ids, dynamic, train_ids=loaded.splits["train"])
        loss, n = found.loss_nats, found.chars
        protocol = {"protocol": "dynamic", "dynamic": dynamic.to_dict()}
    report({"checkpoint": str(path), "corpus": corpus, "split": split, "chars": n,
            "unit": cfg.data.unit, "loss_nats": loss, **protocol,
            "elapsed_s": round(time.perf_counter() - start, 3)}, as_json)


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


def check_split(loaded, split: str, corpus: str, d):
    """The ids of ``split``, refused with the reason when it cannot be scored."""
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
    return ids


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
