"""The ``charlm`` command: train, sample, eval, score, inspect, gradflow, visualize, bench,
tune, export.

The only package that reads argv or writes to the terminal. Commands parse, build, call,
report; torch is imported inside the commands so ``charlm --help`` stays fast. Every
:class:`~charlm.errors.CharLMError` becomes a one-line ``Error: ...`` and a non-zero status.
"""

from __future__ import annotations

import errno
import logging
import os
import sys

import click

from charlm import __version__
from charlm.cli.bench import bench
from charlm.cli.eval import eval_
from charlm.cli.export import export
from charlm.cli.look import gradflow, inspect, visualize
from charlm.cli.sample import sample
from charlm.cli.score import score
from charlm.cli.train import train
from charlm.cli.tune import tune
from charlm.errors import CharLMError
from charlm.system.process import sigterm_as_interrupt

# libgomp (torch's OpenMP on Linux) spins 300,000 times before a thread waiting for work
# sleeps; two torch processes on the same cores then burn each other's time spinning. A short
# spin keeps a training's solo speed and gives most of it back beside another process: the
# figures are in docs/performance.md, "Sharing the CPU with another process".
SPIN_COUNT = "3000"


if "OMP_WAIT_POLICY" not in os.environ:  # here, before any command imports torch
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


class _Group(click.Group):
    """A click group that reports CharLMError as a clean message instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            with sigterm_as_interrupt():
                result = super().invoke(ctx)
                sys.stdout.flush()  # here, so that a full stdout is reported, not at exit
                return result
        except CharLMError as exc:
            error = _Stopped(str(exc)) if hasattr(exc, "exit_code") else \
                click.ClickException(str(exc))
            error.exit_code = getattr(exc, "exit_code", 1)  # 130 / 143 after a signal
            raise error from None
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM where no command saves anything
            click.echo("", err=True)  # (sample, eval): 128 + the signal, as the shell expects
            raise click.exceptions.Exit(128 + getattr(exc, "signum", 2)) from None
        except BrokenPipeError:  # the reader went away (`charlm score --per-char | head`)
            _silence_stdout()
            raise click.exceptions.Exit(141) from None  # 128 + SIGPIPE, as a killed writer
        except OSError as exc:  # the last resort: a path or device the system refused
            if _stdout_failed(exc):
                _silence_stdout()
                raise click.ClickException(
                    f"cannot write to standard output: {exc.strerror or exc}; send it "
                    f"elsewhere{_output_advice(ctx)}") from None
            where = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"cannot use{where}: {exc.strerror or exc}; check the "
                                       f"paths and folders given to this command") from None


def _stdout_failed(exc: OSError) -> bool:
    """True when ``exc`` is a full standard output (``> FILE`` on a full disk, ``/dev/full``):
    every file charlm writes itself goes through :func:`charlm.system.files.replacing`, whose
    errors name the file, so a "full" error naming no file is a write to stdout."""
    return exc.filename is None and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _output_advice(ctx: click.Context) -> str:
    """How the running command can write elsewhere than stdout."""
    command = ctx.command.get_command(ctx, ctx.invoked_subcommand or "") if isinstance(
        ctx.command, click.Group) else None
    has_output = command is not None and any(  # a file, not inspect's folder
        p.name == "output" and isinstance(p.type, click.Path) for p in command.params)
    return " (> FILE), or write a file with --output FILE" if has_output else " (> FILE)"


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit cannot fail a second time."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a test's captured stdout)
        pass


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger for the CLI: INFO by default, DEBUG with -v, WARNING with -q.

    In a torchrun job (``RANK`` set) ranks other than 0 log only warnings and errors, each
    line prefixed with ``[rank N]``.
    """
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    rank = int(os.environ.get("RANK", "0") or 0)
    fmt = "%(message)s" if rank == 0 else f"[rank {rank}] %(message)s"
    logging.basicConfig(level=level if rank == 0 else max(level, logging.WARNING), format=fmt,
                        force=True)


class _Stopped(click.ClickException):
    """A clean stop on a signal: said plainly, not as an error."""

    def show(self, file=None) -> None:
        click.echo(self.format_message(), err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                           "show_default": True})
@click.version_option(__version__, prog_name="charlm")
@click.option("-v", "--verbose", count=True, help="More log output (debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(verbose: int, quiet: bool) -> None:
    """Character-level language models with recurrent cores (RNN, LSTM, GRU, minGRU, minLSTM,
    IndRNN)."""
    setup_logging(-1 if quiet else verbose)


for _command in (train, sample, eval_, score, inspect, gradflow, visualize, bench, tune,
                 export):
    main.add_command(_command)
