"""Corpus sources: files, folders, the standard library, downloads (on loopback only), and
streaming decoding."""

import codecs
import functools
import hashlib
import http.server
import threading
import zipfile

import pytest
from helpers import TRAIN, run_ok

from charlm.data import named
from charlm.data.named import Download, fetch_verified
from charlm.data.sources import (
    NAMED_CORPORA,
    iter_decoded,
    load_text,
    pystdlib_files,
    resolve_sources,
)
from charlm.errors import DataError


def test_pystdlib_is_real_sorted_and_excludes_tests():
    files = pystdlib_files()
    assert len(files) > 300 and files == sorted(files)
    parts = {p for f in files for p in f.parts}
    assert not parts & {"site-packages", "test", "tests", "idle_test"}
    assert any(f.name == "os.py" for f in files)


def test_directory_spec_reads_text_files_sorted(tmp_path, caplog):
    (tmp_path / "b.txt").write_text("second\n")
    (tmp_path / "a.txt").write_text("first\n")
    (tmp_path / "img.bin").write_bytes(b"\x89PNG\x00\x00")
    (tmp_path / ".hidden").write_text("no\n")
    assert load_text(str(tmp_path)) == "first\nsecond\n"
    assert "img.bin (binary: it holds NUL bytes" in caplog.text and ".hidden (hidden)" in caplog.text


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file or directory"),
    (lambda p: p.write_text("  \n\t\n"), "empty or only whitespace"),
    (lambda p: p.write_bytes(b"ok \xff\xfe bytes"), "byte 0xff at byte offset 3"),
    (lambda p: p.write_bytes("text".encode("utf-16")), "looks like UTF-16"),
])
def test_bad_corpus_files_get_clear_errors(tmp_path, make, message):
    path = tmp_path / "corpus.txt"
    make(path)
    with pytest.raises(DataError) as info:
        load_text(str(path))
    assert message in str(info.value)


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(DataError, match="holds no text files"):
        resolve_sources(str(tmp_path))


def test_bom_stripped_and_newlines_normalised(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    assert load_text(str(path)) == "one\ntwo\nthree\n"


def test_errors_policy_replace(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"ab\xffcd")
    assert load_text(str(path), errors="replace") == "ab\ufffdcd"


@pytest.fixture
def http_dir(tmp_path):
    """A loopback HTTP server over a folder; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_tinyshakespeare_downloads_once_and_verifies(http_dir, tmp_path, monkeypatch):
    root, base = http_dir
    payload = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    (root / "input.txt").write_text(payload)
    served = Download(f"{base}/input.txt", None, "sha256",
                      hashlib.sha256(payload.encode()).hexdigest(), "tinyshakespeare/input.txt")
    monkeypatch.setitem(named.DOWNLOADS, "tinyshakespeare", served)
    data_dir = tmp_path / "data"
    assert load_text("tinyshakespeare", data_dir) == payload
    assert (data_dir / "tinyshakespeare" / "input.txt").read_text() == payload
    (root / "input.txt").unlink()                 # second load must not need the network
    assert load_text("tinyshakespeare", data_dir) == payload


@pytest.mark.parametrize("name, algorithm", [("enwik8", "md5"), ("text8", "sha256")])
def test_zipped_corpora_download_once_and_verify_their_member(http_dir, tmp_path, monkeypatch,
                                                              name, algorithm):
    """enwik8 and text8 come as zips; the published digest is of the file inside."""
    root, base = http_dir
    payload = b"<mediawiki> anarchism originated as a term of abuse </mediawiki>\n" * 20
    with zipfile.ZipFile(root / f"{name}.zip", "w") as archive:
        archive.writestr(name, payload)
    real = named.DOWNLOADS[name]
    monkeypatch.setitem(named.DOWNLOADS, name, Download(
        f"{base}/{name}.zip", name, algorithm, hashlib.new(algorithm, payload).hexdigest(),
        real.path, real.unit))
    data_dir = tmp_path / "data"
    assert resolve_sources(name, data_dir) == [data_dir / real.path]
    assert (data_dir / real.path).read_bytes() == payload
    (root / f"{name}.zip").unlink()
    assert resolve_sources(name, data_dir) == [data_dir / real.path]  # no network again
    (data_dir / real.path).write_bytes(payload + b"x")                  # a damaged copy
    with pytest.raises(DataError, match=f"has {algorithm} .*delete it to download it again"):
        resolve_sources(name, data_dir)


def test_published_digests_are_of_the_corpus_files():
    assert named.DOWNLOADS["enwik8"].digest == "a1fa5ffddb56f4953e226637dabbb36a"
    assert named.DOWNLOADS["enwik8"].unit == "byte"
    assert {"enwik8", "text8", "tinyshakespeare"} <= set(NAMED_CORPORA)


def test_download_with_wrong_checksum_saves_nothing(http_dir, tmp_path):
    root, base = http_dir
    (root / "f.txt").write_text("tampered")
    dest = tmp_path / "out" / "input.txt"
    with pytest.raises(DataError, match="expected 00"):
        fetch_verified(Download(f"{base}/f.txt", None, "sha256", "00" * 32, "x"), dest)
    assert not dest.exists()


def test_offline_download_says_where_to_put_the_file(http_dir, tmp_path):
    _, base = http_dir
    dest = tmp_path / "input.txt"
    with pytest.raises(DataError, match=f"put the file at {dest}"):
        fetch_verified(Download(f"{base}/missing.txt", None, "sha256", "00" * 32, "x"), dest)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 4096])
def test_streaming_decode_does_not_depend_on_chunk_size(size):
    raw = codecs.BOM_UTF8 + "héllo\r\nwörld\r\rend\n한국어 ✓\r".encode() * 3
    whole = "".join(iter_decoded([raw], "x"))
    pieces = [raw[i:i + size] for i in range(0, len(raw), size)]
    assert "".join(iter_decoded(pieces, "x")) == whole
    assert "\r" not in whole and not whole.startswith("\ufeff")
    assert whole.count("\n") == 3 * 5  # CRLF, CR, CR, LF, CR per repetition


def test_decode_error_names_the_global_byte_offset():
    raw = b"abcdef" * 3 + b"\xc3\x28" + b"xyz"
    pieces = [raw[i:i + 4] for i in range(0, len(raw), 4)]
    with pytest.raises(DataError, match="byte 0xc3 at byte offset 18"):
        "".join(iter_decoded(pieces, "f.txt"))


def test_symbolic_links_in_a_corpus_folder_are_logged(tmp_path, stdlib_text):
    corpus, elsewhere = tmp_path / "corpus", tmp_path / "elsewhere"
    corpus.mkdir()
    elsewhere.mkdir()
    (corpus / "a.txt").write_text(stdlib_text[:20_000])
    (elsewhere / "b.txt").write_text(stdlib_text[20_000:40_000])
    (corpus / "linked").symlink_to(elsewhere, target_is_directory=True)
    (corpus / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (corpus / "file-link.txt").symlink_to(elsewhere / "b.txt")
    (corpus / "z-again.txt").symlink_to(corpus / "a.txt")
    result = run_ok(*TRAIN, "--data", corpus, "--max-steps", 2, cwd=tmp_path)
    assert f"z-again.txt (the same file as {corpus / 'a.txt'}, already read)" in result.stderr
    assert "linked (a link to a folder, not followed)" in result.stderr
    assert "dangling.txt (a link whose target is missing)" in result.stderr
    assert "encoded 2 files" in result.stderr          # a.txt and the link to a file


def test_codec_that_yields_lone_surrogates_is_one_data_error(tmp_path):
    from charlm.data.sources import iter_decoded
    from charlm.errors import DataError
    with pytest.raises(DataError, match="lone surrogate .U\\+D800.*--encoding"):
        list(iter_decoded([b"ab+2AA-cd"], "s.txt", encoding="utf-7"))

