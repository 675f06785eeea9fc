"""``charlm sample``: sampling, stop strings, beam search and interactive sessions from a
trained checkpoint (no training code)."""

from __future__ import annotations

import logging
import secrets

import click

from charlm.cli.common import (
    LiveChoice,
    checkpoint_options,
    h,
    open_model,
    output_option,
    text_out,
)
from charlm.cli.engine import ENGINES, check_engine, sample_onnx, write_rows
from charlm.config.schema import MAX_BEAM_WIDTH, MAX_SAMPLES
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
@click.option("--num-samples", type=click.IntRange(1, MAX_SAMPLES), default=1,
              help="Samples generated together; each stops on its own.")
@click.option("--stop", "stops", multiple=True, metavar="STRING",
              help="End a sample right after the first occurrence of STRING in its "
                   "continuation; repeatable (the first to occur ends it). In bash, "
                   "$'\\n\\n' is a blank line.")
@click.option("--strip-stop", is_flag=True, help="Leave the stop string out of the output.")
@click.option("--max-lines", type=click.IntRange(min=1), default=None,
              help=h("End a sample after N newlines of its continuation.", "no limit"))
@click.option("--beam-width", type=click.IntRange(1, MAX_BEAM_WIDTH), default=None,
              help=h("Beam search with W beams (1 is greedy): the most probable text instead "
                     "of a random one; --num-samples N <= W prints the N best with their "
                     "log-probabilities.", "off (sample)"))
@click.option("--length-penalty", type=click.FloatRange(min=0), default=None, metavar="ALPHA",
              help=h("Rank beams by log-probability / ((5 + n) / 6) ** ALPHA; it matters "
                     "only when --stop or --max-lines end beams at different lengths.", "0"))
@click.option("--interactive", is_flag=True,
              help="Read a prime per line from the terminal and stream each continuation; "
                   "/help lists the commands (/keep, /reset, /temp, /topk, /quit).")
@click.option("--engine", type=LiveChoice(lambda: ENGINES), default="torch", show_default=True,
              help="torch, or onnx / onnx-int8: CHECKPOINT is then a folder of 'charlm "
                   "export' (with --int8 for onnx-int8), run by onnxruntime without torch.")
@output_option("Write the text to this file (always UTF-8) instead of stdout.")
def sample(checkpoint, checkpoint_dir, device, length, temperature, top_k, top_p, prime,
           drop_unknown, seed, num_samples, stops, strip_stop, max_lines, beam_width,
           length_penalty, interactive, engine, output) -> None:
    """Generate text from CHECKPOINT (a .pt file, a run folder, a run name or 'latest').

    Without CHECKPOINT, the best checkpoint of the newest run under checkpoints/ is used. On a
    terminal whose encoding cannot show a character, it is printed as an escape (\\uXXXX);
    --output always writes exact UTF-8.
    """
    given = click.get_current_context().params
    check_combinations(given)
    if engine != "torch":
        check_engine(engine, given)
        return sample_onnx(checkpoint, engine, length=length, temperature=temperature,
                           top_k=top_k, top_p=top_p, prime=prime, drop_unknown=drop_unknown,
                           seed=seed, num_samples=num_samples, stops=stops,
                           strip_stop=strip_stop, max_lines=max_lines, output=output)
    from charlm.generation.sampling import check_top_k, prepare_prime
    from charlm.generation.stopping import make_stop_rule

    _, _, model, vocab, cfg, dev = open_model(checkpoint, checkpoint_dir, device)
    s = sample_settings(cfg, length=length, temperature=temperature, top_k=top_k, top_p=top_p)
    check_top_k(s.top_k, vocab.size)
    rule = make_stop_rule(vocab, stops, max_lines)
    if beam_width:
        shown, prime_ids = prepare_prime(vocab, prime, drop_unknown)
        with sized(cfg, vocab, dev, beam_width, s.length, "--beam-width"), \
                text_out(output) as out:
            return write_beams(out, model, shown, prime_ids.to(dev), s.length, beam_width,
                               num_samples, length_penalty or 0.0, rule, strip_stop, vocab)
    picks = dict(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                 generator=seeded(seed, dev))
    if interactive:
        from charlm.cli.interactive import Session, run_session

        return run_session(Session(model, vocab, cfg, dev, s.length, rule, strip_stop,
                                   drop_unknown, picks))
    shown, prime_ids = prepare_prime(vocab, prime, drop_unknown)
    with sized(cfg, vocab, dev, num_samples, s.length, "--num-samples"), text_out(output) as out:
        write_samples(out, model, shown, prime_ids.to(dev), s.length, num_samples, picks, rule,
                      strip_stop, vocab)


def sample_settings(cfg, **given):
    """The checkpoint's ``sample`` section with the options given now, validated by the
    config schema's ranges (an error names the option): a :class:`SampleConfig`."""
    from charlm.config import build_config

    options = {f"sample.{key}": value for key, value in given.items()}
    flags = {f"sample.{key}": f"--{key.replace('_', '-')}" for key in given}
    return build_config(options=options, base=cfg, flags=flags).sample


def sized(cfg, vocab, dev, rows: int, length: int, option: str):
    """Refuse sampling (or a beam search) whose buffers cannot fit in ``dev``'s memory
    (:func:`~charlm.models.size.generation_bytes`), and guard it against allocation failures:
    both one line naming the bytes or sizes, ``option`` and ``--length``.

    Args:
        rows: samples generated together, or beams; a lone sample streams, keeping no ids.
    Raises:
        ResourceError: before anything is allocated, or when an allocation fails.
    """
    from charlm.models.size import generation_bytes
    from charlm.system.memory import allocation_guard, check_fits

    kept = length if rows > 1 or option == "--beam-width" else 0
    what = f"{option[2:].replace('-', '_')} {rows}, length {length}"
    fix = f"lower {option} or --length"
    check_fits(generation_bytes(cfg.model, vocab.size, rows, kept), f"sampling ({what})", dev,
               fix)
    return allocation_guard("sampling", f"{what}, hidden_size {cfg.model.hidden_size}", fix)


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
        logger.info("seed %d (--seed %d gives this sample again)", seed, seed)
    return torch.Generator(device=dev).manual_seed(seed)


def write_samples(out, model, shown: str, prime_ids, length: int, num_samples: int,
                  picks: dict, rule, strip: bool, vocab) -> None:
    """Sample and write: one sample streams as it comes; several are generated together
    and written when all have ended, a blank line between them."""
    from charlm.generation.sampling import generate

    steps = generate(model, prime_ids, length, num_samples, **picks)
    write_rows(out, steps, shown, num_samples, rule, strip, vocab)


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
