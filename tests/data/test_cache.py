"""The encoded-corpus cache: streaming encoding equals whole-text encoding, reuse, invalidation."""

import os

import numpy as np
import pytest
from helpers import FIXTURES, TINY, TRAIN, run_ok

from charlm.data.cache import encode_corpus
from charlm.data.sources import load_text
from charlm.data.vocab import Vocab
from charlm.errors import DataError

KOREAN = FIXTURES / "korean.txt"


def test_cache_matches_in_memory_encoding_and_is_reused(tmp_path, stdlib_text, caplog):
    path = tmp_path / "c.txt"
    path.write_text(stdlib_text + "\r\nend", encoding="utf-8")
    first = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    text = load_text(str(path))
    assert not first.reused and isinstance(first.ids, np.memmap)
    assert first.vocab.chars == Vocab.from_text(text).chars
    assert np.array_equal(first.ids, Vocab.from_text(text).encode(text))
    assert first.ids.dtype == np.uint8
    again = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    assert again.reused and again.folder == first.folder
    assert np.array_equal(again.ids, first.ids)
    path.write_text(stdlib_text + "changed", encoding="utf-8")  # a changed file: new entry
    changed = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    assert not changed.reused and changed.folder != first.folder
    assert changed.vocab.decode(changed.ids[-7:]) == "changed"


def test_options_that_change_ids_change_the_key(tmp_path):
    path = tmp_path / "k.txt"
    path.write_text(KOREAN.read_text(encoding="utf-8"), encoding="utf-8")
    cache = tmp_path / "cache"
    chars = encode_corpus(str(path), cache_dir=cache)
    byte = encode_corpus(str(path), cache_dir=cache, unit="byte")
    assert chars.folder != byte.folder
    assert chars.vocab.size > 256 and chars.ids.dtype == np.uint16
    assert bytes(byte.ids) == path.read_bytes() and byte.vocab.size == 256


def test_imposed_vocabulary(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abc abc\n" * 50, encoding="utf-8")
    wide = Vocab("\n abcdz")
    got = encode_corpus(str(path), cache_dir=tmp_path / "cache", vocab=wide)
    assert got.vocab.chars == wide.chars and wide.decode(got.ids[:8]) == "abc abc\n"
    with pytest.raises(DataError, match="vocabulary lacks: 'c'"):
        encode_corpus(str(path), cache_dir=tmp_path / "cache", vocab=Vocab("\n ab"))


def test_damaged_entry_is_encoded_again(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello world\n" * 40, encoding="utf-8")
    first = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    (first.folder / "ids.bin").write_bytes(b"\x00")  # truncated
    again = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    assert not again.reused and len(again.ids) == 12 * 40


def test_second_train_uses_the_cache(tmp_path, stdlib_text):
    (tmp_path / "c.txt").write_text(stdlib_text, encoding="utf-8")
    args = [*TINY, "--data", "c.txt", "--max-steps", 2]
    first = run_ok("train", *args, "--run-name", "a", cwd=tmp_path)
    second = run_ok("train", *args, "--run-name", "b", cwd=tmp_path)
    assert "encoded 1 files" in first.stderr and "using cached encoding" not in first.stderr
    assert "using cached encoding" in second.stderr and "encoded" not in second.stderr


def test_rewritten_ids_are_encoded_again(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello world\n" * 40, encoding="utf-8")
    first = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    size = (first.folder / "ids.bin").stat().st_size
    (first.folder / "ids.bin").write_bytes(bytes([250]) * size)  # same size, ids out of range
    again = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    assert not again.reused and int(again.ids.max()) < again.vocab.size


def test_encoding_aliases_share_an_entry(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("caf\xe9 na\xefve\n".encode("latin-1") * 30)
    a = encode_corpus(str(path), cache_dir=tmp_path / "cache", encoding="latin-1")
    b = encode_corpus(str(path), cache_dir=tmp_path / "cache", encoding="ISO-8859-1")
    assert b.reused and a.folder == b.folder and "é" in a.vocab


def test_unwritable_cache_folder_is_a_clear_error(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello world\n" * 40, encoding="utf-8")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="cannot write the encoded corpus to .*afile.*"
                                         "--set data.cache_dir=PATH"):
        encode_corpus(str(path), cache_dir=tmp_path / "afile" / "cache")


def test_an_encoding_killed_midway_leaves_no_folder_behind(tmp_path, stdlib_text):
    cache = tmp_path / "data" / "cache"
    stale = cache / f".tmp-0123abcd-{os.uname().nodename}-{2**22 + 4321}"  # a dead pid
    stale.mkdir(parents=True)
    (stale / "ids.bin").write_bytes(b"\x00" * 100)
    (tmp_path / "c.txt").write_text(stdlib_text[:20_000])
    run_ok(*TRAIN, "--data", "c.txt", "--max-steps", 2, cwd=tmp_path)
    assert not stale.exists()


@pytest.mark.parametrize("ids_change", ["in range", "out of range"])
def test_bit_rot_in_cached_ids_is_caught_and_encoded_again(tmp_path, caplog, ids_change):
    """Bytes that change on disk with the size and mtime unchanged gave an IndexError
    traceback (ids out of range) or trained silently on other text (ids in range)."""
    path = tmp_path / "t.txt"
    path.write_text("hello world, the quick brown fox\n" * 40, encoding="utf-8")
    first = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    want = np.array(first.ids)
    ids_bin = first.folder / "ids.bin"
    stat = ids_bin.stat()
    raw = bytearray(ids_bin.read_bytes())
    raw[100] = (raw[100] + 1) % first.vocab.size if ids_change == "in range" else 250
    ids_bin.write_bytes(bytes(raw))
    os.utime(ids_bin, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = encode_corpus(str(path), cache_dir=tmp_path / "cache")
    assert not again.reused and np.array_equal(np.array(again.ids), want)
    assert "fails its CRC-32 check" in caplog.text and "--cache-dir" in caplog.text


def growing(monkeypatch, path, on_read: int, text: str):
    """Append ``text`` to ``path`` just after the ``on_read``-th read of it begins (read 1
    digests the file, 2 scans the vocabulary, 3 writes the ids)."""
    import charlm.data.cache as cache

    real, reads = cache.file_chunks, []

    def chunks(p, *args, **kw):
        if p != path:
            yield from real(p, *args, **kw)
            return
        reads.append(p)
        for i, chunk in enumerate(real(p, 4096)):  # several chunks: the text grows mid-read
            yield chunk
            if i == 0 and len(reads) == on_read:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(text)

    monkeypatch.setattr(cache, "file_chunks", chunks)


@pytest.mark.parametrize("on_read, text", [(1, "more text\n"), (2, "hello\n"), (3, "hello\n"),
                                           (3, "ünïcødé ∑\n")])
def test_a_corpus_that_changes_while_it_is_encoded_is_refused(tmp_path, monkeypatch, on_read,
                                                              text):
    """A corpus growing while it was encoded got "the checkpoint's vocabulary" in a run
    without a checkpoint, or, grown with known characters, was cached under its old
    digest; now every pass checks the bytes it read, and nothing is cached."""
    path = tmp_path / "t.txt"
    path.write_text("hello world\n" * 20_000, encoding="utf-8")  # several chunks
    growing(monkeypatch, path, on_read, text)
    with pytest.raises(DataError) as info:
        encode_corpus(str(path), cache_dir=tmp_path / "cache")
    assert "changed while it was being read" in str(info.value)
    assert "--data" in str(info.value) and "checkpoint" not in str(info.value)
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".")]
