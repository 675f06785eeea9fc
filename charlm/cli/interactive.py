"""``charlm sample --interactive``: a prime per line from the terminal, each continuation
streamed back as it is generated.

A line is a prime (an empty line continues the last turn, in either mode); a line that starts
with ``/`` is a command (:data:`HELP`). With readline available the line can be
edited and earlier lines recalled with the arrow keys. Ctrl-D (end of input) and ``/quit``
end the session with status 0; Ctrl-C ends it at once, at the prompt or mid-continuation,
with status 130; neither prints a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from charlm.cli.common import stream_continuation, text_out
from charlm.errors import shorten

if TYPE_CHECKING:  # torch is imported only when a command runs (charlm --help stays fast)
    import torch

    from charlm.config import RunConfig
    from charlm.data.vocab import ByteVocab, Vocab
    from charlm.generation.sampling import Sampler
    from charlm.generation.stopping import StopRule
    from charlm.models.lm import CharLM

PROMPT = "> "
HELP = """commands:
  /keep      keep the state across turns: each prime continues the conversation
  /reset     start each turn from a fresh state (the default)
  /temp X    temperature X (0 is greedy)
  /topk N    keep the N most likely characters; /topk off keeps all
  /topp P    nucleus sampling mass P in (0, 1]; /topp off keeps all
  /drop-unknown on|off   skip characters the model never saw in primes (off: refuse them)
  /help      this list
  /quit      end (so do Ctrl-D and Ctrl-C)
an empty line continues from where the last turn ended, in either mode (before the first
turn: from a newline)"""


@dataclass
class Session:
    """What an interactive session needs: the model and the options of ``charlm sample``.

    Attributes:
        config: the checkpoint's config, against whose schema ``/temp`` and the like are
            checked.
        picks: ``temperature``, ``top_k``, ``top_p`` and ``generator`` for the sampler.
    """

    model: CharLM
    vocab: Vocab | ByteVocab
    config: RunConfig
    device: torch.device
    length: int
    rule: StopRule
    strip: bool
    drop_unknown: bool
    picks: dict
    keep: bool = False
    sampler: Sampler | None = field(default=None, init=False)


def run_session(session: Session) -> None:
    """Prompt, read, generate, until Ctrl-D or ``/quit``.

    Raises:
        click.exceptions.Exit: status 130 on Ctrl-C.
    """
    from charlm.generation.sampling import Sampler
    from charlm.system.process import signals_noticed

    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:  # not on every platform; plain input() still works
        pass
    session.sampler = Sampler(session.model, 1, **session.picks)
    click.echo(f"charlm interactive: type a prime and press Enter; /help lists the commands, "
               f"Ctrl-D ends ({'keeping' if session.keep else 'resetting'} the state).",
               err=True)
    try:
        while True:
            try:
                with signals_noticed():  # a Ctrl-C right at the prompt is not lost
                    line = input(PROMPT)
            except EOFError:
                click.echo()
                return
            if not (command(session, line) if line.startswith("/") else turn(session, line)):
                return
    except KeyboardInterrupt:
        click.echo()
        raise click.exceptions.Exit(130) from None


def turn(session: Session, line: str) -> bool:
    """Generate one continuation of ``line`` (its characters must be in the vocabulary,
    unless ``/drop-unknown on``), or, for an empty line, of the last turn; always True (go
    on)."""
    from charlm.errors import DataError
    from charlm.generation.sampling import prepare_prime

    sampler, empty = session.sampler, sampler_is_empty(session)
    if line or empty:  # a prime; an empty line with nothing to continue starts from a newline
        try:
            _, ids = prepare_prime(session.vocab, line, session.drop_unknown,
                                   fix="type the line without them, or type /drop-unknown on "
                                   "to skip them")
        except DataError as exc:
            click.echo(f"Error: {exc}", err=True)
            return True
        if not session.keep or empty:
            sampler.reset()
        sampler.feed(ids.to(session.device))
    tokens = (int(sampler.draw()[0]) for _ in range(session.length))
    with text_out(None) as out:
        stream_continuation(out, "", tokens, session.vocab, session.rule, session.strip)
    return True


def sampler_is_empty(session: Session) -> bool:
    """True before the first turn (or after a reset): nothing to continue from."""
    return session.sampler.logits is None


def command(session: Session, line: str) -> bool:
    """Carry out one ``/command``; False for ``/quit``."""
    name, _, arg = line.strip().partition(" ")
    arg = arg.strip()
    if name == "/quit":
        return False
    if name in ("/keep", "/reset"):
        session.keep = name == "/keep"
        session.sampler.reset()
        say(f"{'keeping' if session.keep else 'resetting'} the state between turns")
    elif name in ("/temp", "/topk", "/topp"):
        set_pick(session, name, arg)
    elif name == "/drop-unknown":
        set_drop_unknown(session, arg)
    elif name == "/help":
        say(HELP)
    else:
        say(f"unknown command {name}; {HELP}")
    return True


def set_drop_unknown(session: Session, arg: str) -> None:
    """``/drop-unknown on|off``: what ``--drop-unknown`` does, set mid-session."""
    if arg not in ("on", "off"):
        return say(f"/drop-unknown takes on or off, not {shorten(arg)}")
    session.drop_unknown = arg == "on"
    say("skipping characters the model never saw" if session.drop_unknown else
        "refusing primes with characters the model never saw")


def set_pick(session: Session, name: str, arg: str) -> None:
    """``/temp X``, ``/topk N|off``, ``/topp P|off``: checked by the config schema, as the
    options of ``charlm sample`` are."""
    from charlm.config import build_config
    from charlm.errors import ConfigError
    from charlm.generation.sampling import check_top_k

    key = {"/temp": "temperature", "/topk": "top_k", "/topp": "top_p"}[name]
    usage = "a number" if key == "temperature" else "a number or off"
    if arg == "off" and key != "temperature":
        value = None
    else:
        try:
            value = (int if key == "top_k" else float)(arg)
        except ValueError:
            return say(f"{name} takes {usage}, not {shorten(arg)}")
    try:
        cfg = build_config(options={f"sample.{key}": value}, base=session.config,
                           flags={f"sample.{key}": name})
        check_top_k(value if key == "top_k" else None, session.vocab.size, name)
    except ConfigError as exc:
        return say(f"{name} takes {usage}: {exc}")
    if value is not None:
        session.config = cfg
    setattr(session.sampler, key, value)
    say(f"{key} {'off' if value is None else value}")


def say(text: str) -> None:
    """A session message, on stdout between the continuations."""
    click.echo(text)
    sys.stdout.flush()
