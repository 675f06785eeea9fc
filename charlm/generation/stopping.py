"""Where a continuation ends: right after a stop string, or after its N-th newline.

Torch-free (plain ids in, plain ids out), so the torch engine and the ONNX engine stop the
same way. Several samples drawn together each end on their own (:func:`continuations`).

Shape legend: B samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from charlm.data.sources import normalize_newlines
from charlm.data.vocab import format_chars
from charlm.errors import SamplingError, shorten

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StopRule:
    """Where a continuation ends: right after the first occurrence of a stop string, or right
    after its ``max_lines``-th newline, whichever comes first.

    Matching is on ids and on the continuation only (the prime never counts). For a char model
    one id is one character; for a byte model a stop string is matched as its UTF-8 bytes,
    which occur in the bytes exactly where the decoded text holds the string.

    Attributes:
        stops: the id sequences of the stop strings.
        newline: the id of ``"\\n"``, or None when the rule counts no lines.
        max_lines: newlines that end a continuation; None for no limit.
    """

    stops: tuple[tuple[int, ...], ...] = ()
    newline: int | None = None
    max_lines: int | None = None

    @property
    def longest(self) -> int:
        """Ids in the longest stop string (0 without stop strings)."""
        return max(map(len, self.stops), default=0)

    def match(self, ids: list[int] | tuple[int, ...]) -> int | None:
        """Whether the continuation ``ids`` ends with its last id.

        Returns:
            None if it goes on; else how many of its last ids form the stop string that
            ended it (the longest, when several end there), or 0 for the line limit.
        """
        counted = self.max_lines is not None and ids and ids[-1] == self.newline
        return self.ends(ids[max(len(ids) - self.kept, 0):],
                         ids.count(self.newline) if counted else 0)

    @property
    def kept(self) -> int:
        """How many of a continuation's last ids :meth:`ends` needs: the longest stop string's
        length, at least 1 (the newline of a line limit)."""
        return max(self.longest, 1)

    def ends(self, tail: tuple[int, ...] | list[int], lines: int) -> int | None:
        """:meth:`match` from what it needs, so that a caller extending a continuation id by
        id checks it in O(:attr:`kept`), not O(its length).

        Args:
            tail: the continuation's last :attr:`kept` ids (all of them, when it is shorter).
            lines: the newlines in the whole continuation.
        """
        found = [len(s) for s in self.stops if len(tail) >= len(s) and
                 tuple(tail[len(tail) - len(s):]) == s]
        if found:
            return max(found)
        if self.max_lines is not None and tail and tail[-1] == self.newline and \
                lines >= self.max_lines:
            return 0
        return None


def make_stop_rule(vocab, stops: tuple[str, ...] = (), max_lines: int | None = None
                   ) -> StopRule:
    """The :class:`StopRule` of ``--stop`` strings and ``--max-lines``.

    Args:
        vocab: the model's vocabulary; a char model reads stop strings with their line
            endings normalised, as it reads primes.
    Raises:
        SamplingError: for an empty stop string, one with characters the model never saw
            (it could never occur), or ``max_lines`` without a newline in the vocabulary.
    """
    encoded = []
    for stop in stops:
        text = normalize_newlines(stop) if vocab.unit == "char" else stop
        unknown = vocab.unknown(text)
        if not text or unknown:
            raise SamplingError(f"--stop {shorten(stop)} " + (
                "is empty; give at least one character" if not text else
                f"has {len(unknown)} character(s) the model never saw: "
                f"{format_chars(unknown)}, so it could never occur; remove it"))
        encoded.append(tuple(int(i) for i in vocab.encode(text)))
    if max_lines is not None and "\n" not in vocab:
        raise SamplingError("--max-lines counts newlines, but this model's vocabulary has "
                            "none; use --stop or --length instead")
    newline = int(vocab.encode("\n")[0]) if max_lines is not None else None
    return StopRule(tuple(encoded), newline, max_lines)


class Continuation:
    """One sample's ids as they are drawn, checked against a :class:`StopRule`.

    :meth:`push` returns the ids that are final: all of them, except that with ``strip``
    the last ``longest - 1`` are held back while they might still begin a stop string, and
    a stop string that ends the continuation is dropped.

    Args:
        rule: where the continuation ends.
        strip: drop the stop string that ended it (a line limit's newline is kept).
    """

    def __init__(self, rule: StopRule, strip: bool = False) -> None:
        self.rule, self.strip = rule, strip
        self.ids: list[int] = []
        self.lines = 0  # newlines in ids
        self.done = False
        self._given = 0  # ids already returned

    def push(self, token: int) -> list[int]:
        """Add the next id; return the ids that became final (possibly none)."""
        self.ids.append(token)
        self.lines += token == self.rule.newline
        end = self.rule.ends(self.ids[max(len(self.ids) - self.rule.kept, 0):], self.lines)
        if end is not None:
            self.done = True
            if self.strip and end:
                del self.ids[len(self.ids) - end:]
            return self.finish()
        hold = max(self.rule.longest - 1, 0) if self.strip else 0
        upto = max(self._given, len(self.ids) - hold)
        out, self._given = self.ids[self._given:upto], upto
        return out

    def finish(self) -> list[int]:
        """The ids not yet returned (those held back), at the end of the continuation."""
        out, self._given = self.ids[self._given:], len(self.ids)
        return out


def continuations(steps: Iterable, num_samples: int, rule: StopRule,
                  strip: bool = False) -> list[list[int]]:
    """Each sample's ids from :func:`generate`'s steps, each cut by ``rule`` on its own; the
    generation stops early once every sample has ended.

    Args:
        steps: (B,) int64 ids per step (tensors or arrays), B = ``num_samples``.
    Returns:
        B lists of ids.
    """
    samples = [Continuation(rule, strip) for _ in range(num_samples)]
    for ids in steps:
        for sample, token in zip(samples, ids.tolist()):
            if not sample.done:
                sample.push(token)
        if all(s.done for s in samples):
            break
    return [s.ids for s in samples]
