"""What TensorBoard's Time Series tab draws first, ported from its frontend (tensorflow/
tensorboard, read at commit 70b76c92, the rule of the installed 2.21 bundle), so that tests
can check a run's first screen without a browser.

* Cards: ``groupCardIdWithMetdata`` (webapp/metrics/utils.ts) sorts tags with
  ``compareTagNames`` and groups them by the text before the first ``/``; the reducer
  (webapp/metrics/store/metrics_reducers.ts, ``fetchTagMetadataSucceeded``) expands only the
  first two groups.
* The y range of a scalar card, with the defaults (``METRICS_SETTINGS_DEFAULT`` in
  webapp/metrics/store/metrics_types.ts: ``scalarSmoothing: 0.6``, ``ignoreOutliers: true``):
  the series is smoothed (``classicSmoothing``, webapp/widgets/line_chart_v2/
  data_transformer.ts); the raw series becomes ``aux`` (scalar_card_container.ts) and so is
  left out of ``computeDataSeriesExtent`` (widgets/line_chart_v2/line_chart_internal_utils.ts),
  which takes the smoothed values between the 5th and 95th quantile by index; ``niceDomain``
  (widgets/line_chart_v2/lib/scale.ts, linear scale) pads that by 5% of its width each side
  and rounds it outward with d3's ``nice()`` (d3-scale ``linearish.nice``, d3-array
  ``tickIncrement``, 10 ticks).
"""

from __future__ import annotations

import math
import re

SMOOTHING = 0.6
PADDING_RATIO = 0.05
EXPANDED_GROUPS = 2


def served(points: list[tuple[int, float]]) -> list[float]:
    """The values of ``[(step, value)]`` (in the order written) that TensorBoard serves, in step
    order: a point written at a step already seen replaces those from that step on
    (tensorboard/data/server/reservoir.rs, "Preemption")."""
    kept: dict[int, float] = {}
    for step, value in points:
        kept = {s: v for s, v in kept.items() if s < step}
        kept[step] = value
    return [kept[step] for step in sorted(kept)]


def smoothed(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """``classicSmoothing``: a debiased exponential moving average (constant series kept)."""
    if all(v == values[0] for v in values):
        return list(values)
    last, count, out = 0.0, 0, []
    for v in values:
        last = last * weight + (1 - weight) * v
        count += 1
        out.append(last / (1 - weight ** count))
    return out


def _tick_increment(start: float, stop: float, count: int = 10) -> float:
    step = (stop - start) / count
    power = math.floor(math.log10(step))
    error = step / 10 ** power
    factor = 10 if error >= math.sqrt(50) else 5 if error >= math.sqrt(10) else \
        2 if error >= math.sqrt(2) else 1
    return factor * 10 ** power if power >= 0 else -(10 ** -power) / factor


def _nice(start: float, stop: float, count: int = 10) -> tuple[float, float]:
    prestep = None
    for _ in range(10):
        step = _tick_increment(start, stop, count)
        if step == prestep:
            break
        if step > 0:
            start, stop = math.floor(start / step) * step, math.ceil(stop / step) * step
        elif step < 0:
            start, stop = math.ceil(start * step) / step, math.floor(stop * step) / step
        else:
            break
        prestep = step
    return start, stop


def y_range(values: list[float]) -> tuple[float, float]:
    """The y axis a card draws for one run's raw ``values`` (in step order)."""
    ys = sorted(smoothed(values))
    low, high = ys[0], ys[-1]
    if len(ys) > 2:  # ignoreYOutliers
        low, high = ys[math.ceil((len(ys) - 1) * 0.05)], ys[math.floor((len(ys) - 1) * 0.95)]
    if low == high:
        return (-1.0, 1.0) if low == 0 else (2 * low, 0.0) if low < 0 else (0.0, 2 * low)
    pad = (high - low + 2.0 ** -52) * PADDING_RATIO
    return _nice(low - pad, high + pad)


def _tag_key(tag: str) -> list:
    """A sort key agreeing with ``compareTagNames`` on ordinary tags: numbers compare as
    numbers, and a ``/`` or a number (its "breaks") sorts before any other character."""
    return [(0, float(number)) if number else (0, 0.0) if slash else (1, ord(char))
            for number, slash, char in re.findall(r"(\d+(?:\.\d*)?)|(/)|(.)", tag)]


def first_cards(tags: list[str]) -> list[str]:
    """The cards of the groups Time Series expands on opening, in screen order."""
    groups: dict[str, list[str]] = {}
    for tag in sorted(tags, key=_tag_key):
        groups.setdefault(tag.split("/", 1)[0], []).append(tag)
    return [tag for group in list(groups.values())[:EXPANDED_GROUPS] for tag in group]
