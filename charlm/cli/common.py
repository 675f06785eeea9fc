"""What the commands share: the checkpoint argument and its options, the output option,
the cache option, live choices from the cell table, and text output."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterable

import click


def h(text: str, default: str) -> str:
    """Help with its default spelled out (click would wrap a string default in parentheses)."""
    return f"{text}  [default: {default}]".strip()


class LiveChoice(click.Choice):
    """A choice read afresh from a function at each use (the cell table)."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names
        super().__init__(list(names()))

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ assigns it
        pass


class _OutputOption(click.Option):
    """``-o/--output``, which also accepts the older ``--out`` without showing it."""

    def get_help_record(self, ctx):
        shown, self.opts = self.opts, [o for o in self.opts if o != "--out"]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def output_option(help: str, default: str | None = None, dir_okay: bool = False):
    """The one output option of every command: ``-o/--output PATH``."""
    return click.option("-o", "--output", "--out", "output", cls=_OutputOption,
                        default=default, show_default=default is not None,
                        type=str if dir_okay else click.Path(dir_okay=False),
                        help=help)


def cache_option(command):
    """``--cache-dir``, for commands that encode text."""
    return click.option("--cache-dir", default=None, metavar="DIR",
                        help=h("Folder for encoded corpora.", "the checkpoint's data.cache_dir, "
                               "else data/cache"))(command)


def read_corpus(data, vocab=None, cache_dir: str | None = None, **changes):
    """:func:`charlm.data.corpus.load_corpus` for a command that takes ``--cache-dir``: no
    progress bar, and errors name that option."""
    from charlm.data.corpus import load_corpus

    return load_corpus(data, vocab, progress=False, cache_option="--cache-dir PATH",
                       cache_dir=cache_dir, **changes)


def checkpoint_options(many: bool = False, device: str = "auto"):
    """``CHECKPOINT`` (a .pt file, a run folder, a run name or ``latest``; optional),
    ``--checkpoint-dir`` and ``--device``, the same for every command.

    Args:
        many: take any number of checkpoints (``checkpoints``, a tuple).
        device: the ``--device`` default.
    """
    def decorate(command):
        command = click.option("--device", default=device, show_default=True,
                               help="auto, cpu, cuda, cuda:N or mps.")(command)
        command = click.option("--checkpoint-dir", default="checkpoints", show_default=True,
                               help="Where run names and 'latest' are looked up.")(command)
        if many:
            return click.argument("checkpoints", nargs=-1)(command)
        return click.argument("checkpoint", required=False)(command)
    return decorate


def open_model(checkpoint: str | None, checkpoint_dir: str, device: str = "cpu",
               prefer: tuple[str, ...] | None = None, check=None):
    """Find, load and rebuild a checkpoint: ``(path, ckpt, model, vocab, config, device)``.
    The file loaded is logged to stderr; ``check(ckpt, path)``, if given, may refuse it
    before the model is rebuilt."""
    from charlm.store.folders import BEST, LAST
    from charlm.store.names import open_checkpoint
    from charlm.store.restore import restore_model
    from charlm.system.device import resolve_device

    dev = resolve_device(device)
    path, ckpt = open_checkpoint(checkpoint, checkpoint_dir, prefer or (BEST, LAST), dev)
    if check is not None:
        check(ckpt, path)
    model, vocab, cfg = restore_model(ckpt, dev, source=str(path))
    return path, ckpt, model, vocab, cfg, dev


@contextlib.contextmanager
def text_out(output: str | None):
    """A UTF-8 file, or stdout made unable to fail on characters its encoding lacks. A write
    that fails (a full disk) ends the command with one line, and a file of that name keeps
    its previous contents (:func:`charlm.system.files.replacing`); Ctrl-C keeps what was
    written."""
    if output is None:
        if (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
            sys.stdout.reconfigure(errors="backslashreplace")
        yield sys.stdout
        return
    from charlm.system.files import replacing

    with replacing(output, keep_on_interrupt=True) as fh:
        yield fh


def stream_continuation(out, shown: str, tokens: Iterable[int], vocab, rule, strip: bool
                        ) -> None:
    """Write ``shown`` (the prime) and then one continuation as its ids come, cut where
    ``rule`` (a :class:`~charlm.sampling.StopRule`) ends it, and end the line unless the
    text already does. A byte model's text is written in whole UTF-8 sequences.

    Args:
        tokens: the continuation's ids, drawn lazily (the loop stops drawing at the end).
        strip: leave out the stop string that ended the continuation.
    """
    from charlm.generation.stopping import Continuation

    sample, decode, last = Continuation(rule, strip), vocab.stream_decoder(), shown[-1:]
    out.write(shown)
    for token in tokens:
        piece = decode(sample.push(token))
        out.write(piece)
        out.flush()
        last = piece[-1:] or last
        if sample.done:
            break
    piece = decode(sample.finish(), True)
    out.write(piece + ("" if (piece[-1:] or last) == "\n" else "\n"))
    out.flush()
