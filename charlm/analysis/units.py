"""Interpretable units: colour a passage by the activation of hidden or cell units.

Runs the model's traced forward over a passage, correlates every unit with
simple properties of the text (position in the line, inside quotes, inside brackets,
indentation depth), and writes one self-contained HTML page that colours each character by the
activation of chosen units (red positive, blue negative).

Shape legend: T passage length, H hidden size, L layers.

References:
    Karpathy, Johnson & Fei-Fei 2015, "Visualizing and understanding recurrent networks",
    section 4.3 (interpretable, long-range LSTM cells).
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass

import numpy as np
import torch

from charlm.errors import CharLMError, shorten
from charlm.models.lm import CharLM, eval_mode

logger = logging.getLogger(__name__)

_UNIT = re.compile(r"^([hc]?)(\d+):(\d+)$")


@dataclass(frozen=True)
class UnitMatch:
    """A unit and how well it tracks one text property (Pearson r over the passage)."""

    unit: str
    feature: str
    r: float


@torch.no_grad()
def activations(model: CharLM, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Every unit's activation at every character: ``{'h0': (T, H), 'c0': (T, H), ...}``.

    ``hK`` is layer K's hidden state; ``cK`` the LSTM's cell state (LSTM only).
    """
    x = torch.from_numpy(ids.astype(np.int64)).unsqueeze(0)         # (1, T)
    x = x.to(next(model.parameters()).device)
    with eval_mode(model):
        _, _, gates = model.trace(x)
    out = {}
    for layer, rec in gates.items():
        for name in ("h", "c"):
            if name in rec:
                out[f"{name}{layer}"] = rec[name][0].float().cpu().numpy()  # (T, H)
    return out


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per-character properties (T,): position in line, inside quotes, inside brackets,
    indentation depth (leading spaces of the current line)."""
    pos, quote, depth, indent = [], [], [], []
    col, open_quote, level, lead, leading = 0, None, 0, 0, True
    for ch in text:
        if ch == "\n":
            col, open_quote, lead, leading = 0, None, 0, True
        else:
            col += 1
            if leading and ch == " ":
                lead += 1
            else:
                leading = False
        if ch in "\"'" and open_quote in (None, ch):
            open_quote = None if open_quote else ch
        level = max(0, level + (ch in "([{") - (ch in ")]}"))
        pos.append(col)
        quote.append(open_quote is not None)
        depth.append(level > 0)
        indent.append(lead)
    return {name: np.asarray(v, dtype=np.float64) for name, v in (
        ("position in line", pos), ("inside quotes", quote), ("inside brackets", depth),
        ("indentation", indent))}


def best_units(acts: dict[str, np.ndarray], features: dict[str, np.ndarray], top: int = 3
               ) -> list[UnitMatch]:
    """For each feature, the ``top`` units whose activation correlates most (by |r|)."""
    matches = []
    for feature, f in features.items():
        if f.std() == 0:
            continue
        fz = (f - f.mean()) / f.std()
        for key, a in acts.items():
            std = a.std(axis=0)
            r = ((a - a.mean(axis=0)) * fz[:, None]).mean(axis=0) / np.where(std > 0, std, np.inf)
            for j in np.argsort(-np.abs(r))[:top]:
                matches.append(UnitMatch(f"{key}:{j}", feature, float(r[j])))
    best = {}
    for m in matches:  # keep the top units per feature across layers
        best.setdefault(m.feature, []).append(m)
    return [m for ms in best.values() for m in sorted(ms, key=lambda m: -abs(m.r))[:top]]


def parse_unit(spec: str, acts: dict[str, np.ndarray]) -> str:
    """``LAYER:INDEX`` (cell state for the LSTM, else hidden) or ``hLAYER:INDEX`` /
    ``cLAYER:INDEX``, as a key ``'c1:37'``.

    Raises:
        CharLMError: for a malformed or out-of-range unit.
    """
    m = _UNIT.match(spec.strip())
    if not m:
        raise CharLMError(f"--unit {shorten(spec)} must look like LAYER:INDEX, hLAYER:INDEX or "
                          f"cLAYER:INDEX, e.g. 1:37")
    kind, layer, index = m.group(1) or ("c" if "c0" in acts else "h"), m.group(2), int(m.group(3))
    key = f"{kind}{layer}"
    if key not in acts or not 0 <= index < acts[key].shape[1]:
        have = ", ".join(f"{k}:0..{v.shape[1] - 1}" for k, v in acts.items())
        raise CharLMError(f"--unit {shorten(spec)} does not exist; this model has {have}")
    return f"{key}:{index}"


def choose_units(specs: tuple[str, ...], acts: dict[str, np.ndarray],
                 matches: list[UnitMatch]) -> list[str]:
    """The units to colour by: those the user named (``--unit``), else the best match for
    each text property, once each.

    Raises:
        CharLMError: for a malformed or out-of-range unit.
    """
    if specs:
        return [parse_unit(u, acts) for u in specs]
    best = {}
    for m in matches:  # matches come grouped by feature, best first
        best.setdefault(m.feature, m.unit)
    return list(dict.fromkeys(best.values()))


def _colour(value: float) -> str:
    """Red for positive, blue for negative activation in [-1, 1]."""
    v = max(-1.0, min(1.0, value))
    fade = int(255 * (1 - abs(v)))
    return f"rgb(255,{fade},{fade})" if v >= 0 else f"rgb({fade},{fade},255)"


def _passage(text: str, series: np.ndarray) -> str:
    spans = []
    for ch, v in zip(text, series):
        shown = "↵\n" if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="background:{_colour(float(v))}" title="{v:+.3f}">{shown}'
                     f"</span>")
    return '<div class="passage">' + "".join(spans) + "</div>"


def render_html(text: str, acts: dict[str, np.ndarray], units: list[str],
                matches: list[UnitMatch], title: str) -> str:
    """The self-contained page: a table of the best-matching units, then one coloured copy
    of the passage per unit (activations scaled by the unit's max |value|)."""
    rows = "".join(f"<tr><td>{html.escape(m.feature)}</td><td><code>{m.unit}</code></td>"
                   f"<td>{m.r:+.3f}</td></tr>" for m in matches)
    blocks = []
    for unit in units:
        key, index = unit.split(":")
        series = acts[key][:, int(index)]
        scale = max(float(np.abs(series).max()), 1e-6)
        blocks.append(f"<h2>unit <code>{unit}</code> (max |activation| {scale:.3f})</h2>"
                      + _passage(text, series / scale))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
.passage {{ font-family: monospace; white-space: pre-wrap; line-height: 1.5;
  border: 1px solid #ccc; padding: .6em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .2em .6em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Each character is coloured by a unit's activation after reading it: red positive, blue
negative, white near zero (hover for the value). <code>cK:i</code> is unit i of layer K's cell
state, <code>hK:i</code> of its hidden state.</p>
<h2>Units that best track properties of the text (Pearson r over this passage)</h2>
<table><tr><th>property</th><th>unit</th><th>r</th></tr>{rows}</table>
{''.join(blocks)}
</body></html>
"""
