"""Helpers shared by the commands: option help, checkpoint loading, text output."""

from __future__ import annotations

import contextlib
import sys

import click

from charlm.config import RunConfig

_DEFAULTS = RunConfig()


def cfg_default(section: str, key: str) -> str:
    """Default text for an option whose default comes from the config."""
    return f"{getattr(getattr(_DEFAULTS, section), key)}, config {section}.{key}"


def h(text: str, default: str) -> str:
    """Help with its default spelled out (click would wrap a string default in parentheses)."""
    return f"{text}  [default: {default}]".strip()


def load_model_for(checkpoint: str | None, checkpoint_dir: str, device: str):
    """Find, load and rebuild a checkpoint: (path, model, vocab, config, device)."""
    from charlm.checkpoint import find_checkpoint, load_checkpoint
    from charlm.run import load_model, resolve_device

    path = find_checkpoint(checkpoint, checkpoint_dir)
    dev = resolve_device(device)
    model, vocab, cfg = load_model(load_checkpoint(path, map_location=dev), dev)
    return path, model, vocab, cfg, dev


@contextlib.contextmanager
def text_out(output: str | None):
    """A UTF-8 file, or stdout made unable to fail on characters its encoding lacks."""
    if output is not None:
        try:
            fh = open(output, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
        with fh:
            yield fh
        return
    if (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
        sys.stdout.reconfigure(errors="backslashreplace")
    yield sys.stdout
