"""``charlm export --web``: the page samples in a real browser (headless Chromium loads it
from a loopback server, onnxruntime-web from ``npm install``) and its greedy text equals
``charlm sample --temperature 0`` for the same checkpoint."""

import functools
import http.server
import shutil
import subprocess
import threading
import urllib.parse
from html.parser import HTMLParser

import pytest
from helpers import run_ok

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed "
                                          "(pip install 'charlm[onnx]')")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PRIME, LENGTH = "def ", 120


def test_export_web_writes_the_page_and_pins_onnxruntime_web(trained):
    import json

    work, _, run = trained
    folder = work / "web-files"
    run_ok("export", run, "--output", folder, "--no-val", "--web", cwd=work)
    pins = json.loads((folder / "package.json").read_text())["dependencies"]
    assert set(pins) == {"onnxruntime-web"} and pins["onnxruntime-web"][0].isdigit()
    assert 'id="output"' in (folder / "index.html").read_text()
    assert "npm install && python -m http.server" in (folder / "README.md").read_text()


class _Output(HTMLParser):
    """The text of the element with id ``output`` and its ``data-done`` flag."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.text, self.done = 0, "", False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.depth:
            self.depth += 1
        elif attrs.get("id") == "output":
            self.depth, self.done = 1, attrs.get("data-done") == "1"

    def handle_endtag(self, tag):
        self.depth = max(self.depth - 1, 0)

    def handle_data(self, data):
        if self.depth:
            self.text += data


def serve(folder):
    """An http.server for ``folder`` on a free loopback port, in a thread; (server, url)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


def dump_dom(url, profile):
    """The page's DOM after headless Chromium ran its scripts (at most ~60 s virtual time)."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=60000",
            "--dump-dom", url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120).stdout


# exports, npm-installs and starts a browser (15 s and more on one core): with the slow tests
@pytest.mark.slow
def test_the_page_greedy_text_equals_charlm_sample(trained, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the page needs onnxruntime-web from npm")
    work, _, run = trained
    folder = work / "web-page"
    run_ok("export", run, "--output", folder, "--no-val", "--web", cwd=work)
    install = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=folder,
                             capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"npm install failed: {install.stderr.strip()[-300:]}")
    expected = run_ok("sample", run, "--temperature", 0, "--prime", PRIME, "--length", LENGTH,
                      cwd=work).stdout
    server, url = serve(folder)
    try:
        query = urllib.parse.urlencode({"prime": PRIME, "length": LENGTH, "temperature": 0,
                                        "run": 1})
        page = _Output()
        page.feed(dump_dom(f"{url}index.html?{query}", tmp_path / "profile"))
    finally:
        server.shutdown()
    assert page.done, "the page did not finish sampling"
    assert page.text == expected
