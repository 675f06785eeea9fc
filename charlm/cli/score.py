"""``charlm score``: how surprising a checkpoint finds any text, in all and character by
character (no training code)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from charlm.cli.common import checkpoint_options, h, open_model, output_option, text_out


@click.command()
@checkpoint_options()
@click.option("--text", "text_file", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="The text file to score (read as the model's corpus was: its encoding, "
                   "LF line endings; a byte model reads its bytes).")
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
    from charlm.errors import OptionError
    from charlm.evaluation.static import surprisal
    from charlm.generation.sampling import prepare_prime
    from charlm.metrics import LN2, bits_unit, loss_unit, nats_to_bits, perplexity
    from charlm.system.memory import allocation_guard

    if per_char and as_json:
        raise OptionError("--per-char prints a table and --json one object: choose one")
    path, _, model, vocab, cfg, dev = open_model(checkpoint, checkpoint_dir, device)
    ids = read_ids(Path(text_file), vocab, encoding or cfg.data.encoding, cfg.data.errors)
    with allocation_guard("scoring", f"{len(ids):,} {vocab.unit}s of --text, hidden_size "
                          f"{cfg.model.hidden_size}", "score a shorter --text"):
        nats = surprisal(model, ids.to(dev), prepare_prime(vocab, None)[1].to(dev)
                         ).double().cpu()
    loss, unit = nats.mean().item(), vocab.unit
    result = {"checkpoint": str(path), "text": text_file, "chars": len(nats), "unit": unit,
              "loss_nats": loss, "bpc": nats_to_bits(loss), "perplexity": perplexity(loss)}
    line = (f"{text_file}: loss {loss:.4f} {loss_unit(unit)}, {result['bpc']:.4f} "
            f"{bits_unit(unit)}, perplexity {result['perplexity']:.3f} over {len(nats):,} "
            f"{unit}s ({path})")
    with text_out(output) as out:
        if per_char:
            out.write(f"offset\t{unit}\tnats\tbits\n")
            for i, (token, n) in enumerate(zip(ids.tolist(), nats.tolist())):
                out.write(f"{i}\t{shown(vocab, token)}\t{n:.4f}\t{n / LN2:.4f}\n")
            click.echo(line, err=True)
        else:
            out.write((json.dumps(result) if as_json else line) + "\n")


def read_ids(path: Path, vocab, encoding: str = "utf-8", errors: str = "strict"):
    """(N,) int64 ids of a text file, read as the model's corpus was.

    Raises:
        DataError: if it cannot be read or decoded, is empty, or holds characters the model
            never saw (listed).
    """
    import torch

    from charlm.data.sources import read_text_file
    from charlm.data.vocab import format_chars
    from charlm.errors import DataError

    if vocab.unit == "byte":
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read --text {path}: {exc.strerror or exc}") from None
        ids = list(raw)
    else:
        text = read_text_file(path, encoding, errors)
        unknown = vocab.unknown(text)
        if unknown:
            raise DataError(f"--text {path} has {len(unknown)} character(s) the model never "
                            f"saw: {format_chars(unknown)}; a model cannot score them: remove "
                            f"them from the text")
        ids = vocab.encode(text).astype("int64")
    if not len(ids):
        raise DataError(f"--text {path} is empty; give a file with text to score")
    return torch.as_tensor(ids, dtype=torch.int64)


def shown(vocab, token: int) -> str:
    """A character as a TSV cell: escapes for tabs, newlines and other control characters
    (a byte model's non-ASCII bytes as \\xNN)."""
    char = vocab.decode([token]) if vocab.unit == "char" else chr(token)
    if vocab.unit == "byte" and token >= 0x80:
        return f"\\x{token:02x}"
    return char.encode("unicode_escape").decode("ascii") if not char.isprintable() or \
        char == "\\" else char
