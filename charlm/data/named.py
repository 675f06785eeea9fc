"""Named corpora that are downloaded once into ``data_dir`` and checked by their published
digests: tiny-shakespeare, enwik8 and text8.

* ``tinyshakespeare``: Karpathy's char-rnn corpus, 1,115,394 characters
  (``<data_dir>/tinyshakespeare/input.txt``, sha256 below).
* ``enwik8``: the first 10^8 bytes of an English Wikipedia dump (Hutter Prize; Mahoney 2006),
  ``<data_dir>/enwik8/enwik8``, md5 ``a1fa5ffd...36a`` as published with it. The standard
  protocol models it as bytes (``data.unit: byte``) with the splits 90M / 5M / 5M, which the
  default fractions (0.9, 0.05) give exactly, and reports test bits per byte with the state
  carried through the whole split (``charlm eval CKPT --split test --batch-size 1``).
* ``text8``: the same dump cleaned to 27 characters (a-z and space), 10^8 characters,
  ``<data_dir>/text8/text8``, sha256 below; the same splits.

Offline, the error says where to put the file; a file already there is checked before use.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from charlm.errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Download:
    """Where a named corpus comes from and how it is checked.

    Attributes:
        url: the published file (a zip whose ``member`` is the corpus, or the text itself).
        member: the file inside the zip, or None when ``url`` is the text.
        algorithm: ``sha256`` or ``md5``: the digest its publisher gives.
        digest: hex digest of the corpus file (not of the zip).
        path: where it is kept, relative to ``data_dir``.
        unit: the ``data.unit`` its published results use.
    """

    url: str
    member: str | None
    algorithm: str
    digest: str
    path: str
    unit: str = "char"


DOWNLOADS = {
    "tinyshakespeare": Download(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
        "input.txt", None, "sha256",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "tinyshakespeare/input.txt"),
    "enwik8": Download("http://mattmahoney.net/dc/enwik8.zip", "enwik8", "md5",
                       "a1fa5ffddb56f4953e226637dabbb36a", "enwik8/enwik8", unit="byte"),
    "text8": Download("http://mattmahoney.net/dc/text8.zip", "text8", "sha256",
                      "6e890197040d37d85beb962ae1f041ff1d9a9ca8d20c7d99c85027eebf51dca7",
                      "text8/text8"),
}


def corpus_file(name: str, data_dir: str | Path) -> Path:
    """The file of named corpus ``name`` under ``data_dir``, downloaded and checked when
    missing, checked when present.

    Raises:
        DataError: if the download fails, or a digest differs (nothing is saved then).
    """
    d = DOWNLOADS[name]
    dest = Path(data_dir) / d.path
    if not dest.exists():
        return fetch_verified(d, dest)
    found = _digest(d.algorithm, dest.read_bytes())
    if found != d.digest:
        raise DataError(f"{dest} has {d.algorithm} {found}, not {name}'s {d.digest}; delete "
                        f"it to download it again, or pass the file with --data PATH")
    return dest


def fetch_verified(d: Download, dest: Path, timeout_s: float = 60.0) -> Path:
    """Download ``d.url``, take its member, check the digest and write ``dest`` atomically.

    Raises:
        DataError: if the download fails, the zip lacks its member, or the digest differs;
            ``dest`` is then untouched.
    """
    logger.info("downloading %s to %s", d.url, dest)
    try:
        with urllib.request.urlopen(d.url, timeout=timeout_s) as resp:
            payload = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"could not download {d.url} ({reason}); offline, put the file at "
                        f"{dest} ({d.algorithm} {d.digest})") from None
    text = _member(payload, d) if d.member else payload
    found = _digest(d.algorithm, text)
    if found != d.digest:
        raise DataError(f"download of {d.url} has {d.algorithm} {found}, expected {d.digest}; "
                        f"nothing was saved; put a verified copy at {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, dest)
    return dest


def _member(payload: bytes, d: Download) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return archive.read(d.member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"download of {d.url} is not a zip holding {d.member} ({exc}); "
                        f"nothing was saved") from None


def _digest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()
