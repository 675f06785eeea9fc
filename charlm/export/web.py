"""``charlm export --web``: a page that samples from the export folder in the browser.

The page (``index.html`` and ``sampler.js``, an ES module over onnxruntime-web) and a
``package.json`` that pins onnxruntime-web are package data in ``charlm/export/web/``; this
module copies them into the folder and adds how to serve them to its README.md.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ASSETS = ("index.html", "sampler.js", "package.json")

README = """
## Sampling in the browser

`index.html` samples from `model.onnx` with onnxruntime-web (pinned in `package.json`).
Install it once, then serve this folder (it works offline after the install):

    npm install && python -m http.server

and open <http://localhost:8000/?prime=ROMEO:&length=200&temperature=0&run=1>. The page
takes `prime`, `length`, `temperature`, `top_k`, `top_p`, `stop` from the form or the URL;
`run=1` starts at once. Temperature 0 prints what `charlm sample --temperature 0` prints.
"""


def write_web(folder: str | Path) -> list[str]:
    """Copy the page's files into an export ``folder`` and append how to serve it to its
    README.md; returns the names written."""
    folder = Path(folder)
    assets = resources.files("charlm.export") / "web"
    for name in ASSETS:
        (folder / name).write_bytes((assets / name).read_bytes())
    readme = folder / "README.md"
    if readme.exists():
        readme.write_text(readme.read_text(encoding="utf-8") + README, encoding="utf-8")
    return list(ASSETS)
