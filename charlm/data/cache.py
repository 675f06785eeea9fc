"""Encoded corpora on disk: ids in a memory-mapped file, encoded once and reused.

A corpus of any size is encoded in two streaming passes over its files, 16 MiB at a time: the
first finds the vocabulary (``data.unit: char``), the second writes the ids. ``data.unit: byte``
needs one pass: the ids are the file's bytes. Nothing holds the corpus as a Python string; the
ids are read back as a ``numpy.memmap``, so training touches only the pages its steps read.

Cache layout (torch-rnn keeps a JSON sidecar beside its binary data in the same way)::

    <cache_dir>/<key>/ids.bin     N ids, uint8 / uint16 / int32 by vocabulary size
    <cache_dir>/<key>/meta.json   dtype, N, vocabulary, corpus, sha256 of its bytes, options,
                                  ids.bin's mtime and CRC-32 (an entry rewritten since, or
                                  whose bytes rotted, is re-encoded)

Every pass over the text digests the bytes it reads: a file that changes while it is being
encoded (a log still being written) is refused, never cached under the digest of other text.

``key`` hashes the sha256 of the corpus's bytes with the options that change the ids
(unit, encoding, errors policy, and a checkpoint's vocabulary when one is imposed), so a
changed file gets a new entry and an unchanged one is never encoded twice.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from charlm.data.sources import file_chunks, iter_decoded, resolve_sources
from charlm.data.vocab import (
    CODE_POINTS,
    ByteVocab,
    Vocab,
    code_points,
    format_chars,
    vocab_from_payload,
)
from charlm.errors import DataError
from charlm.system.process import process_alive

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: meta.json holds ids.bin's CRC-32


@dataclass(frozen=True)
class EncodedCorpus:
    """A corpus's ids (a read-only-on-disk memory map), its vocabulary and its cache entry."""

    ids: np.ndarray
    vocab: Vocab | ByteVocab
    folder: Path
    reused: bool  # True when the ids came from the cache without reading the text
    sha256: str   # of the corpus's bytes (content_sha256)


class _Pass:
    """One pass over the corpus's files: their bytes in chunks, digested as they are read
    (sha256 over each file's size and bytes, in order), each file checked to be the same
    size and age after its read as before it."""

    def __init__(self, spec: str) -> None:
        self.spec, self.digest = spec, hashlib.sha256()

    def chunks(self, path: Path) -> Iterator[bytes]:
        before = path.stat()
        self.digest.update(f"{before.st_size}:".encode())
        read = 0
        for chunk in file_chunks(path):
            self.digest.update(chunk)
            read += len(chunk)
            yield chunk
        after = path.stat()
        if read != before.st_size or (after.st_size, after.st_mtime_ns) != (
                before.st_size, before.st_mtime_ns):
            raise changed_while_read(path, f"{before.st_size:,} bytes when its read began, "
                                           f"{after.st_size:,} after")

    def check(self, sha256: str) -> None:
        """Refuse a pass that read other bytes than the first pass."""
        if self.digest.hexdigest() != sha256:
            raise changed_while_read(self.spec, "its bytes differ between two passes")


def changed_while_read(what, how: str) -> DataError:
    """The one error for text that changed while charlm read it."""
    return DataError(f"{what} changed while it was being read ({how}): it is being written; "
                     f"encode it once it is finished, or give a finished copy with --data")


def content_sha256(files: list[Path]) -> str:
    """sha256 over the files' sizes and bytes, in order.

    Raises:
        DataError: if a file cannot be read, or changes while it is read.
    """
    reading = _Pass("the corpus")
    for path in files:
        for _ in reading.chunks(path):
            pass
    return reading.digest.hexdigest()


def encode_corpus(spec: str, data_dir: str | Path = "data", cache_dir: str | Path = "data/cache",
                  unit: str = "char", encoding: str = "utf-8", errors: str = "strict",
                  vocab: Vocab | ByteVocab | None = None, progress: bool | None = None,
                  cache_option: str = "--set data.cache_dir=PATH") -> EncodedCorpus:
    """The ids of corpus ``spec``, from the cache when it has them, else encoded into it.

    Args:
        spec: a text file, a folder of text files or a named corpus (:mod:`charlm.data.sources`).
        cache_dir: where encoded corpora are kept.
        unit: ``char`` (code points, the text policy of :mod:`charlm.data.sources`) or ``byte``.
        vocab: a checkpoint's vocabulary to encode with (resume, fine-tuning, evaluation);
            None takes the corpus's own.
        progress: show a tqdm bar (None: only on a terminal).
        cache_option: the running command's option for the cache folder, named in errors.
    Raises:
        DataError: for unreadable or undecodable text, an empty corpus, characters outside
            ``vocab`` (listed), or a cache folder that cannot be written.
    """
    files = resolve_sources(spec, data_dir)
    began = time.perf_counter()
    options = _options(unit, encoding, errors)
    digest = content_sha256(files)
    plain = Path(cache_dir) / _key(digest, options)
    hit = _load(plain)
    if hit is not None and (vocab is None or _same(hit.vocab, vocab)):
        logger.info("corpus %s: using cached encoding %s (%d ids, vocab_size %d, %.1f s)",
                    spec, plain, len(hit.ids), hit.vocab.size, time.perf_counter() - began)
        return hit
    folder = plain
    if vocab is not None and unit == "char":
        folder = Path(cache_dir) / _key(digest, options | {"vocab": vocab.to_payload()})
        hit = _load(folder)
        if hit is not None:
            logger.info("corpus %s: using cached encoding %s", spec, folder)
            return hit
    meta = {"format": FORMAT_VERSION, "corpus": spec, "files": len(files), "sha256": digest,
            **options, "bytes": sum(f.stat().st_size for f in files)}
    corpus = _write(folder, files, meta, vocab, progress, cache_option)
    seconds = time.perf_counter() - began
    logger.info("corpus %s: encoded %d files, %.1f MB into %s in %.1f s (%.1f MB/s)", spec,
                len(files), meta["bytes"] / 1e6, folder, seconds, meta["bytes"] / 1e6 / seconds)
    return corpus


def _options(unit: str, encoding: str, errors: str) -> dict:
    if unit not in ("char", "byte"):
        raise DataError(f"unknown data.unit '{unit}'; use char or byte")
    if unit == "byte":
        return {"unit": "byte"}
    try:
        encoding = codecs.lookup(encoding).name  # latin-1 and iso-8859-1 are one entry
    except LookupError:
        raise DataError(f"unknown text encoding '{encoding}' (data.encoding)") from None
    return {"unit": "char", "encoding": encoding, "errors": errors}


def _key(digest: str, options: dict) -> str:
    blob = json.dumps({"sha256": digest, "format": FORMAT_VERSION, **options}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _same(a, b) -> bool:
    return a.to_payload() == b.to_payload()


def _load(folder: Path) -> EncodedCorpus | None:
    """The cache entry in ``folder``, or None when it is missing or damaged (logged)."""
    meta_path, ids_path = folder / "meta.json", folder / "ids.bin"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        dtype = np.dtype(meta["dtype"])
        stat = ids_path.stat()
        if meta["format"] != FORMAT_VERSION or stat.st_size != meta["length"] * dtype.itemsize:
            raise ValueError("size or format mismatch")
        if stat.st_mtime_ns != meta["ids_mtime_ns"]:  # rewritten since it was encoded
            raise ValueError("ids.bin was modified after encoding")
        if _crc32(ids_path) != meta["ids_crc32"]:  # bit rot: same size and mtime
            raise ValueError("ids.bin fails its CRC-32 check: its bytes changed on disk")
        ids = np.memmap(ids_path, dtype=dtype, mode="c", shape=(meta["length"],))
        return EncodedCorpus(ids, vocab_from_payload(meta["vocab"]), folder, True,
                             meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring damaged cache entry %s (%s); encoding again (--cache-dir "
                       "chooses another cache folder)", folder, exc)
        return None


def _crc32(path: Path) -> int:
    """CRC-32 of a file's bytes, read in chunks."""
    crc = 0
    for chunk in file_chunks(path):
        crc = zlib.crc32(chunk, crc)
    return crc


def _write(folder: Path, files: list[Path], meta: dict, vocab, progress, cache_option: str
           ) -> EncodedCorpus:
    """Encode into a temporary folder, then rename it into place (atomic; a concurrent
    writer of the same entry simply wins)."""
    _clean_stale(folder.parent)
    tmp = folder.parent / f".tmp-{folder.name}-{socket.gethostname()}-{os.getpid()}"
    try:
        if folder.exists():  # a damaged entry (a readable one would have been used)
            shutil.rmtree(folder)
        tmp.mkdir(parents=True, exist_ok=True)
        with (tmp / "ids.bin").open("wb") as out:
            vocab, length = _encode_into(out, files, meta, vocab, progress)
        meta |= {"dtype": vocab.dtype.name, "length": length, "vocab": vocab.to_payload(),
                 "ids_mtime_ns": (tmp / "ids.bin").stat().st_mtime_ns,
                 "ids_crc32": _crc32(tmp / "ids.bin"),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "meta.json").exists():
                raise
    except OSError as exc:
        raise DataError(f"cannot write the encoded corpus to {folder.parent}: "
                        f"{exc.strerror or exc}; choose another folder with "
                        f"{cache_option}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    loaded = _load(folder)
    if loaded is None:
        raise DataError(f"the encoded corpus in {folder} could not be read back; delete the "
                        f"folder and run again")
    return dataclasses.replace(loaded, reused=False)


def _clean_stale(cache_dir: Path, max_age_s: float = 86400.0) -> None:
    """Remove the temporary folders of encodings that died (``kill -9``): those of a process
    of this host that is gone, and any older than ``max_age_s``."""
    host = socket.gethostname()
    for tmp in cache_dir.glob(".tmp-*") if cache_dir.is_dir() else ():
        owner, _, pid = tmp.name.rpartition("-")
        try:
            old = time.time() - tmp.stat().st_mtime > max_age_s
            gone = owner.endswith(f"-{host}") and pid.isdigit() and not process_alive(int(pid))
        except OSError:
            continue
        if old or gone:
            logger.info("removing %s, left by an encoding that did not finish", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def _encode_into(out, files: list[Path], meta: dict, vocab, progress) -> tuple:
    """Write the ids of ``files`` to ``out``; return (vocab, number of ids). Each pass must
    read the bytes ``meta['sha256']`` digests (:class:`_Pass`)."""
    byte = meta["unit"] == "byte"
    passes = 1 if byte or vocab is not None else 2
    bar = tqdm(total=meta["bytes"] * passes, unit="B", unit_scale=True, desc="encoding corpus",
               disable=(not progress) if progress is not None else None, leave=False)
    with bar:
        if byte:
            return ByteVocab(), _checked(meta, lambda r: _copy_bytes(out, files, bar, r))
        imposed = vocab is not None
        vocab = vocab or _checked(meta, lambda r: _scan_vocab(_text_chunks(files, meta, bar,
                                                                           r)))
        length = _checked(meta, lambda r: _write_ids(
            out, _text_chunks(files, meta, bar, r), vocab, imposed)) if vocab is not None else 0
        if not length:  # a checkpoint's vocabulary skips the scan that would have noticed
            raise _empty(files)
        return vocab, length


def _checked(meta: dict, one_pass):
    """Run ``one_pass(reading)`` over a fresh :class:`_Pass`, then check what it read."""
    reading = _Pass(meta["corpus"])
    result = one_pass(reading)
    reading.check(meta["sha256"])
    return result


def _copy_bytes(out, files: list[Path], bar, reading: _Pass) -> int:
    length, text = 0, False
    for path in files:
        for raw in reading.chunks(path):
            out.write(raw)
            length += len(raw)
            text = text or not raw.isspace()
            bar.update(len(raw))
    if not text:
        raise _empty(files)
    return length


def _text_chunks(files: list[Path], meta: dict, bar, reading: _Pass) -> Iterator[str]:
    """Decoded, newline-normalised text of every file, in pieces."""
    for path in files:
        yield from iter_decoded(_counted(reading.chunks(path), bar), str(path),
                                meta["encoding"], meta["errors"])


def _counted(chunks: Iterable[bytes], bar) -> Iterator[bytes]:
    for raw in chunks:
        bar.update(len(raw))
        yield raw


def _scan_vocab(chunks: Iterator[str]) -> Vocab | None:
    """Pass 1: the distinct characters, counted with ``bincount`` over code points; None for
    a text that is empty or only whitespace."""
    counts, text = np.zeros(CODE_POINTS, dtype=np.int64), False
    for piece in chunks:
        counts += np.bincount(code_points(piece), minlength=CODE_POINTS)
        text = text or not piece.isspace()
    if not text:
        return None
    return Vocab("".join(map(chr, np.flatnonzero(counts))))


def _write_ids(out, chunks: Iterator[str], vocab: Vocab, imposed: bool) -> int:
    """Pass 2: ids through the vocabulary's code-point table; refuses characters outside
    ``vocab`` (a checkpoint's when ``imposed``; else the first pass's, so the text changed)."""
    length = 0
    for piece in chunks:
        ids = vocab.lookup(code_points(piece))
        if (ids < 0).any():
            missing = sorted(set(piece) - set(vocab.chars))
            if not imposed:
                raise changed_while_read("the corpus", f"characters the first pass did not "
                                                       f"see: {format_chars(missing)}")
            raise DataError(f"the corpus has characters the checkpoint's vocabulary lacks: "
                            f"{format_chars(missing)}; train a new run on this text")
        out.write(ids.astype(vocab.dtype).tobytes())
        length += len(ids)
    return length


def _empty(files: list[Path]) -> DataError:
    where = files[0] if len(files) == 1 else f"the {len(files)} files"
    return DataError(f"{where} is empty or only whitespace; give a corpus with text in it")
