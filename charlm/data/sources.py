"""Corpus sources: a text file, a directory of text files, or a named corpus.

Named corpora:

* ``pystdlib`` -- the running interpreter's own standard-library ``.py`` sources (no
  site-packages, no test folders, no machine-generated modules such as codec tables),
  concatenated in sorted path order: about 9.7 MB of real Python that is present offline on
  every machine with Python (:mod:`charlm.data.pystdlib`).
* ``tinyshakespeare``, ``enwik8``, ``text8`` -- downloaded once into ``data_dir`` and
  checked by their published digests (:mod:`charlm.data.named`).

Text policy (the same for training, evaluation and priming): files are decoded with an explicit
encoding (UTF-8 by default, never the locale's), a UTF-8 byte-order mark is stripped, and CRLF
and lone CR line endings become LF.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from charlm.data.named import DOWNLOADS, corpus_file
from charlm.data.pystdlib import pystdlib_files
from charlm.data.vocab import format_chars
from charlm.errors import DataError, shorten

logger = logging.getLogger(__name__)

NAMED_CORPORA = ("pystdlib", *DOWNLOADS)
CHUNK_BYTES = 16 << 20  # read and encode 16 MiB at a time
_SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates: see charlm.data.vocab.is_surrogate
SHOW_SKIPPED = 20  # skipped paths of a corpus folder named one by one; -v names the rest


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR become LF (the documented line-ending policy)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check_head(head: bytes, name: str, encoding: str) -> None:
    """Refuse, from its first bytes, a file that UTF-8 decoding would misread.

    Raises:
        DataError: for UTF-16/32 text or binary data (NUL bytes) read as UTF-8.
    """
    if not _is_utf8(encoding):
        return
    head = head[:400]
    odd, even = head[1::2], head[0::2]  # UTF-16 ASCII text: one parity all NUL, one none
    utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff") or len(head) >= 8 and (
        (odd.count(0) > 0.8 * len(odd) and even.count(0) < 0.1 * len(even))
        or (even.count(0) > 0.8 * len(even) and odd.count(0) < 0.1 * len(odd)))
    if utf16:
        raise DataError(f"{name} looks like UTF-16 text, not UTF-8; convert it "
                        f"(iconv -f UTF-16 -t UTF-8) or pass --encoding utf-16")
    if b"\x00" in head:
        raise DataError(f"{name} looks like binary data (it holds NUL bytes), not text; "
                        f"give a text file")


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def _decoder(encoding: str, errors: str):
    """An incremental decoder; UTF-8 strips a byte-order mark."""
    try:
        return codecs.getincrementaldecoder("utf-8-sig" if _is_utf8(encoding) else encoding)(
            errors=errors)
    except LookupError:
        raise DataError(f"unknown text encoding '{encoding}' (data.encoding)") from None


REPLACE_HINT = "--set data.errors=replace"  # how a training user substitutes U+FFFD


def _decode_error(exc: UnicodeDecodeError, name: str, offset: int, replace: str | None
                  ) -> DataError:
    """The user-facing message for bytes that ``exc.encoding`` cannot decode."""
    substitute = f", or pass {replace} to substitute U+FFFD" if replace else ""
    return DataError(f"{name} is not valid {exc.encoding}: byte 0x{exc.object[exc.start]:02x} "
                     f"at byte offset {offset}; if the file uses another encoding pass "
                     f"--encoding NAME (data.encoding){substitute}")


def iter_decoded(chunks: Iterable[bytes], name: str, encoding: str = "utf-8",
                 errors: str = "strict", replace: str | None = REPLACE_HINT) -> Iterator[str]:
    """Decode a byte stream piece by piece under the text policy (module doc).

    A multi-byte character or a CRLF pair split between two chunks is handled as if the
    stream were one piece, so the result never depends on the chunk size.

    Args:
        replace: the option that sets ``errors="replace"`` in the command that reads (None:
            the command has none).
    Raises:
        DataError: as :func:`check_head`, or for undecodable bytes (naming the file, the byte
            offset and the byte value), or a codec's own refusal of the stream.
    """
    decoder, offset, carry_cr, first = _decoder(encoding, errors), 0, False, True
    for raw in itertools.chain(chunks, [None]):
        if first and raw is not None:
            check_head(raw, name, encoding)
            first = False
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(raw or b"", final=raw is None)
        except UnicodeDecodeError as exc:
            raise _decode_error(exc, name, offset - pending + exc.start, replace) from None
        except UnicodeError as exc:  # a codec's own check (UTF-16 without its BOM)
            raise DataError(f"{name} cannot be read as {encoding}: {str(exc)[:100]}; "
                            f"pass --encoding with the file's encoding (data.encoding)"
                            ) from None
        offset += len(raw or b"")
        text = ("\r" if carry_cr else "") + text
        carry_cr = raw is not None and text.endswith("\r")  # may pair with a next "\n"
        if carry_cr:
            text = text[:-1]
        if _SURROGATE.search(text):
            raise DataError(f"{name} decoded with {encoding} yields a lone surrogate "
                            f"(U+{ord(_SURROGATE.search(text)[0]):04X}), which is no character; "
                            f"pass --encoding with another text encoding (data.encoding)")
        if text:
            yield normalize_newlines(text)


def file_chunks(path: Path | None, chunk_bytes: int = CHUNK_BYTES, name: str | None = None
                ) -> Iterator[bytes]:
    """The bytes of ``path`` (None: standard input) in pieces of ``chunk_bytes``.

    Raises:
        DataError: if the file cannot be read (naming ``name``, by default the path).
    """
    name = name or ("standard input" if path is None else str(path))
    if path is None and sys.stdin is None:  # fd 0 closed (`<&-`, some daemons)
        raise DataError(f"cannot read {name}: standard input is closed; give a file instead")
    try:
        with (contextlib.nullcontext(sys.stdin.buffer) if path is None
              else path.open("rb")) as fh:
            while chunk := fh.read(chunk_bytes):
                yield chunk
    except OSError as exc:
        raise DataError(f"cannot read {name}: {exc.strerror or exc}") from None


def text_ids(path: Path | None, vocab, encoding: str = "utf-8", errors: str = "strict",
             name: str | None = None, chunk_bytes: int = 1 << 20,
             replace: str | None = REPLACE_HINT) -> Iterator[np.ndarray]:
    """The ids of a text file (None: standard input) piece by piece, read as the model's
    corpus was (:func:`iter_decoded`; a byte model reads the raw bytes): memory does not
    grow with the text, so a pipe that never ends is read in constant memory.

    A regular file is first read once for characters outside ``vocab``, so that they are
    all refused before any work is done; a pipe is refused at the first piece holding one.

    Yields:
        (n,) int64 ids, ``n >= 1``, in order.
    Raises:
        DataError: if it cannot be read or decoded, or holds characters the model never saw
            (listed), naming ``name`` (by default the path).
    """
    name = name or ("standard input" if path is None else str(path))
    if vocab.unit == "byte":
        for raw in file_chunks(path, chunk_bytes, name):
            yield np.frombuffer(raw, np.uint8).astype(np.int64)
        return

    def pieces():
        return iter_decoded(file_chunks(path, chunk_bytes, name), name, encoding, errors,
                            replace)
    if path is not None and path.is_file():
        unknown = sorted({c for text in pieces() for c in vocab.unknown(text)})
        _refuse_unknown(unknown, name, "")
    offset = 0
    for text in pieces():
        _refuse_unknown(vocab.unknown(text), name, f" (the first within characters "
                                                   f"{offset:,}-{offset + len(text):,})")
        yield vocab.encode(text).astype(np.int64)
        offset += len(text)


def _refuse_unknown(unknown: list[str], name: str, where: str) -> None:
    if unknown:
        raise DataError(f"{name} has {len(unknown)} character(s) the model never saw: "
                        f"{format_chars(unknown)}{where}; a model cannot score them: remove "
                        f"them from the text")


def read_text_file(path: Path, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Read one text file under the text policy.

    Raises:
        DataError: if it cannot be read or decoded.
    """
    return "".join(iter_decoded(file_chunks(path), str(path), encoding, errors))


def _is_binary(path: Path) -> bool:
    """True for files whose first 8 KiB hold a NUL byte (images, archives, bytecode)."""
    with path.open("rb") as fh:
        return b"\x00" in fh.read(8192)


def text_files(root: Path) -> list[Path]:
    """The text files under ``root``, recursively, in sorted path order.

    The rule: a regular file is read, also through a symbolic link to one; skipped, and each
    logged with the reason, are hidden files and folders (a name starting with '.'), binary
    files (a NUL byte in the first 8 KiB, which is also how UTF-16 text looks), links whose
    target is missing, links to folders (not followed: a link can make a loop), and anything
    that is not a regular file (a FIFO, a socket, a device). A file reached twice (a link to
    a file of the folder, or two links to one file) is read once, at its first path in
    sorted order.
    """
    found, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in sorted(dirnames):
            reason = "hidden" if name.startswith(".") else \
                "a link to a folder, not followed" if (here / name).is_symlink() else None
            if reason:
                skipped.append((here / name, reason))
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and not (here / d).is_symlink())
        for name in sorted(filenames):
            path = here / name
            reason = _skip_reason(path)
            (skipped.append((path, reason)) if reason else found.append(path))
    found, twice = _first_of_each_file(sorted(found))
    skipped += twice
    for i, (path, reason) in enumerate(sorted(skipped)):
        logger.log(logging.WARNING if i < SHOW_SKIPPED else logging.DEBUG,
                   "skipped %s (%s)", path, reason)
    if len(skipped) > SHOW_SKIPPED:
        logger.warning("skipped %d more path(s) under %s (charlm -v COMMAND ... lists them)",
                       len(skipped) - SHOW_SKIPPED, root)
    return found


def _first_of_each_file(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``paths`` without the ones that reach a file already listed, and those, each with
    the reason."""
    seen: dict[tuple[int, int], Path] = {}
    kept, twice = [], []
    for path in paths:
        st = path.stat()
        first = seen.setdefault((st.st_dev, st.st_ino), path)
        (kept.append(path) if first == path else
         twice.append((path, f"the same file as {first}, already read")))
    return kept, twice


def _skip_reason(path: Path) -> str | None:
    """Why a file found in a corpus folder is not read, or None to read it."""
    if path.name.startswith("."):
        return "hidden"
    if path.is_symlink() and not path.exists():
        return "a link whose target is missing"
    if not path.is_file():
        return "not a regular file"
    if _is_binary(path):
        return "binary: it holds NUL bytes; UTF-16 text looks so too, convert it to UTF-8"
    return None


def resolve_sources(spec: str, data_dir: str | Path = "data") -> list[Path]:
    """The files a ``--data`` spec stands for, in reading order.

    Args:
        spec: a named corpus (see module doc), a text file, or a directory of text files.
        data_dir: where named corpora that must be downloaded are kept.
    Raises:
        DataError: if the spec names nothing, or a directory holds no text files.
    """
    if spec == "pystdlib":
        return pystdlib_files()
    if spec in DOWNLOADS:
        return [corpus_file(spec, data_dir)]
    try:
        return _spec_files(Path(spec).expanduser(), spec)
    except OSError as exc:  # a name too long, a path through a file, permissions, ...
        raise DataError(f"cannot use --data {shorten(spec)}: {exc.strerror or exc}; give a text "
                        f"file or folder") from None


def _spec_files(path: Path, spec: str) -> list[Path]:
    """The files of a path spec (a folder or a file)."""
    if path.is_dir():
        files = text_files(path)
        if not files:
            raise DataError(f"directory {path} holds no text files; --data takes a text file, "
                            f"a directory of text files, or one of {', '.join(NAMED_CORPORA)}")
        return files
    if path.is_file():
        return [path]
    if path.exists():
        raise DataError(f"'{spec}' is not a regular file or directory; give a text file")
    raise DataError(f"no such file or directory: '{spec}'; --data takes a text file, a "
                    f"directory of text files, or one of {', '.join(NAMED_CORPORA)}")


def load_text(spec: str, data_dir: str | Path = "data", encoding: str = "utf-8",
              errors: str = "strict") -> str:
    """The whole corpus of ``spec`` as one string (files concatenated in order).

    Raises:
        DataError: if a file is missing or undecodable, or the text is empty or only whitespace.
    """
    files = resolve_sources(spec, data_dir)
    text = "".join(read_text_file(f, encoding, errors) for f in files)
    if not text.strip():
        where = files[0] if len(files) == 1 else f"the {len(files)} files of {spec}"
        raise DataError(f"{where} is empty or only whitespace; give a corpus with text in it")
    logger.info("corpus %s: %d files, %d characters", spec, len(files), len(text))
    return text


def canonical_spec(spec: str) -> str:
    """A spec that still names the same corpus from another working directory."""
    if spec in NAMED_CORPORA:
        return spec
    return str(Path(spec).expanduser().resolve())
