"""``charlm score``: how surprising a checkpoint finds any text, in all and character by
character (no training code)."""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path

import click

from charlm.cli.common import checkpoint_options, h, open_model, output_option, text_out


@click.command()
@checkpoint_options()
@click.option("--text", "text_file", required=True,
              type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="The text file to score, or - for standard input (read as the model's "
                   "corpus was: its encoding, LF line endings; a byte model reads its bytes). "
                   "It is read in pieces: any length scores in the same memory.")
@click.option("--per-char", is_flag=True,
              help="Print a TSV of each character's surprisal (offset, char, nats, bits); "
                   "the summary goes to stderr.")
@click.option("--encoding", help=h("Text encoding of --text.", "the checkpoint's"))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@output_option("Write the summary or the TSV to this file (UTF-8) instead of stdout.")
def score(checkpoint, checkpoint_dir, device, text_file, per_char, encoding, as_json,
          output) -> None:
    """Loss (nats/char) and bpc of CHECKPOINT on the text in --text FILE.

    Every character is scored, the first one after a newline (what sampling starts from),
    the state carried through the whole text: a character's surprisal is -ln p of it given
    all the text before it. High surprisal marks the parts of a text the model finds odd.
    """
    import torch

    from charlm.data.sources import text_ids
    from charlm.errors import DataError, OptionError
    from charlm.metrics import bits_unit, loss_unit, nats_to_bits, perplexity
    from charlm.models.lm import READ_CHUNK
    from charlm.system.memory import allocation_guard

    if per_char and as_json:
        raise OptionError("--per-char prints a table and --json one object: choose one")
    path, _, model, vocab, cfg, dev = open_model(checkpoint, checkpoint_dir, device)
    source = None if text_file == "-" else Path(text_file)
    pieces = (torch.from_numpy(ids).to(dev) for ids in text_ids(
        source, vocab, encoding or cfg.data.encoding, cfg.data.errors, f"--text {text_file}",
        replace=None))  # U+FFFD is no character a model saw: no way to replace
    first = next(pieces, None)
    if first is None:
        raise DataError(f"--text {text_file} is empty; give a file with text to score")
    unit = vocab.unit
    with allocation_guard("scoring", f"--text {text_file} in {READ_CHUNK}-{unit} chunks, "
                          f"hidden_size {cfg.model.hidden_size}", "free memory, or score on "
                          "another device with --device"), \
            (text_out(output) if per_char else contextlib.nullcontext()) as table:
        nats_sum, count = score_pieces(model, vocab, itertools.chain([first], pieces), table)
    loss = nats_sum / count
    result = {"checkpoint": str(path), "text": text_file, "chars": count, "unit": unit,
              "loss_nats": loss, "bpc": nats_to_bits(loss), "perplexity": perplexity(loss)}
    line = (f"{text_file}: loss {loss:.4f} {loss_unit(unit)}, {result['bpc']:.4f} "
            f"{bits_unit(unit)}, perplexity {result['perplexity']:.3f} over {count:,} "
            f"{unit}s ({path})")
    if per_char:
        click.echo(line, err=True)
    else:
        with text_out(output) as out:
            out.write((json.dumps(result) if as_json else line) + "\n")


def score_pieces(model, vocab, pieces, table=None) -> tuple[float, int]:
    """Score a text that comes in (n,) id tensors, the state carried from a newline, and
    write each character's row of the TSV to ``table`` (a text file) if given.

    Returns:
        ``(nats, count)``: the total surprisal in nats and the characters scored.
    """
    from charlm.evaluation.static import surprisals
    from charlm.generation.sampling import prepare_prime
    from charlm.metrics import LN2

    total, count = 0.0, 0
    if table is not None:
        table.write(f"offset\t{vocab.unit}\tnats\tbits\n")
    context = prepare_prime(vocab, None)[1].to(next(model.parameters()).device)
    for ids, nats in surprisals(model, pieces, context):
        nats = nats.double().cpu()
        if table is not None:
            table.writelines(f"{count + i}\t{shown(vocab, token)}\t{n:.4f}\t{n / LN2:.4f}\n"
                             for i, (token, n) in enumerate(zip(ids.tolist(), nats.tolist())))
        total, count = total + nats.sum().item(), count + len(nats)
    return total, count


def shown(vocab, token: int) -> str:
    """A character as a TSV cell: escapes for tabs, newlines and other control characters
    (a byte model's non-ASCII bytes as \\xNN)."""
    char = vocab.decode([token]) if vocab.unit == "char" else chr(token)
    if vocab.unit == "byte" and token >= 0x80:
        return f"\\x{token:02x}"
    return char.encode("unicode_escape").decode("ascii") if not char.isprintable() or \
        char == "\\" else char
