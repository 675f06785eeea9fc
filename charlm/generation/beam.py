"""Beam search: the most probable continuations of a prime under the model.

A beam is a continuation and its log-probability, the sum of ``log p(x_t | prime, x_<t)`` in
nats. Each step extends every live beam by every character and keeps the ``W`` best; the
model reads the kept beams' new characters with one :meth:`~charlm.models.CharLM.step`, the
beams' hidden states reordered to follow their parents. Beam search is approximate: with
``W >= V ** (length - 1)`` it keeps every prefix and so is exact.

A beam that meets its :class:`~charlm.sampling.StopRule` (a stop string, a line limit) is
finished and competes, at its shorter length, with the beams that run to ``length``; an
optional length penalty divides each beam's log-probability by ``lp(n) = ((5 + n) / 6) **
alpha`` before they are ranked, so that shorter beams are not favoured merely for having fewer
terms. When every beam has the same length the penalty changes nothing.

Shape legend: K live beams (K <= W), V vocab size, L layers, H hidden size.

References:
    Wu et al. 2016, "Google's neural machine translation system: bridging the gap between
    human and machine translation", arXiv:1609.08144 (the length penalty lp of its beam
    search decoder).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from charlm.generation.stopping import StopRule
from charlm.models.lm import CharLM, eval_mode
from charlm.models.state import map_hidden
from charlm.system.threads import threads_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Beam:
    """One continuation found by :func:`beam_search`.

    Attributes:
        ids: the continuation's ids (the prime not included).
        logprob: its log-probability given the prime, nats (<= 0).
        score: ``logprob / length_penalty(len(ids), alpha)``: what beams are ranked by.
    """

    ids: tuple[int, ...]
    logprob: float
    score: float


def length_penalty(length: int, alpha: float) -> float:
    """``((5 + length) / 6) ** alpha`` (Wu et al. 2016); 1 for ``alpha`` 0."""
    return ((5 + length) / 6) ** alpha


@torch.inference_mode()
def beam_search(model: CharLM, prime_ids: torch.Tensor, length: int, beam_width: int,
                num_results: int = 1, alpha: float = 0.0, rule: StopRule | None = None
                ) -> list[Beam]:
    """The ``num_results`` best continuations of up to ``length`` ids.

    Plain beam search can lose the greedy continuation (pruned early, it may have ended
    best), so for ``W > 1`` the greedy continuation is searched too and competes: the best
    beam is never less probable than greedy decoding's text. That costs one more decode at
    batch 1.

    Args:
        model: a CharLM; it is put in eval mode (and restored afterwards).
        prime_ids: (T0,) int64 ids of the prime, T0 >= 1, on the model's device.
        length: ids to generate (fewer for a beam that its ``rule`` ends).
        beam_width: W, beams kept at each step; 1 is greedy decoding.
        num_results: beams to return, best first (fewer when fewer continuations exist).
        alpha: length-penalty exponent; 0 ranks by log-probability alone.
        rule: where a beam ends early; None runs every beam to ``length``.
    Returns:
        Distinct beams sorted by score, best first.
    Raises:
        ValueError: if ``beam_width`` or ``num_results`` is below 1, or ``length`` below 0.
    """
    if beam_width < 1 or num_results < 1 or length < 0:
        raise ValueError(f"beam_width {beam_width} and num_results {num_results} must be >= 1 "
                         f"and length {length} >= 0")
    with eval_mode(model), threads_for(beam_width, prime_ids.device):
        ended = [end for width in sorted({1, beam_width})
                 for end in _search(model, prime_ids, length, width, rule)]
    ended.sort(key=lambda end: end[1] / length_penalty(end[0].length, alpha), reverse=True)
    beams: dict[tuple[int, ...], Beam] = {}
    for node, logprob in ended:          # best first; the ids of the best only are spelled
        ids = node.ids()
        beams.setdefault(ids, Beam(ids, logprob, logprob / length_penalty(len(ids), alpha)))
        if len(beams) == num_results:
            break
    return list(beams.values())


class _Node:
    """A beam as a link to the beam it extends: extending costs O(1), not a copy of its ids
    (copies made a search O(W x length^2)). ``tail`` and ``lines`` are what its
    :class:`StopRule` needs (:meth:`StopRule.ends`)."""

    __slots__ = ("parent", "token", "length", "lines", "tail")

    def __init__(self, parent: "_Node | None", token: int, lines: int, tail: tuple[int, ...]
                 ) -> None:
        self.parent, self.token, self.lines, self.tail = parent, token, lines, tail
        self.length = parent.length + 1 if parent is not None else 0

    def ids(self) -> tuple[int, ...]:
        """The continuation's ids, first to last (walks back to the root: O(length))."""
        out, node = [], self
        while node.parent is not None:
            out.append(node.token)
            node = node.parent
        return tuple(reversed(out))

    def extend(self, token: int, rule: StopRule | None) -> "_Node":
        """This beam and one more id."""
        if rule is None:
            return _Node(self, token, 0, ())
        lines = self.lines + (token == rule.newline)
        return _Node(self, token, lines, (self.tail + (token,))[-rule.kept:])


def _search(model: CharLM, prime_ids: torch.Tensor, length: int, width: int,
            rule: StopRule | None) -> list[tuple[_Node, float]]:
    """One beam search of width W: the finished beams and the W live at the end, each with
    its log-probability."""
    logits, hidden = model.read(prime_ids.unsqueeze(0))          # (1, V), in chunks
    logp = torch.log_softmax(logits.double(), dim=-1)             # (K=1, V)
    live, finished = [(_Node(None, -1, 0, ()), 0.0)], []
    for t in range(length):
        live, rows, done = _extend(live, logp, width, rule)
        finished += done
        if not live or t + 1 == length:
            break
        index = torch.tensor(rows, device=logp.device)
        hidden = map_hidden(hidden, lambda h: h.index_select(1, index))  # (L, K, H)
        last = torch.tensor([node.token for node, _ in live], device=logp.device)
        logits, hidden = model.step(last, hidden)                  # (K, V)
        logp = torch.log_softmax(logits.double(), dim=-1)
    return finished + live


def _extend(live: list[tuple[_Node, float]], logp: torch.Tensor, width: int,
            rule: StopRule | None):
    """One step: the best extensions of the live beams.

    Takes the best ``2 W`` extensions in order; a finished one (its rule ends it) among the
    first ``W`` joins the finished beams, and the first ``W`` unfinished ones live on.

    Args:
        live: K (beam, log-probability) pairs.
        logp: (K, V) float64 log-probabilities of each beam's next id.
    Returns:
        ``(live, rows, finished)``: the new live beams, the row of ``logp`` each extends,
        and the beams that finished.
    """
    V = logp.shape[-1]
    totals = (torch.tensor([lp for _, lp in live], dtype=logp.dtype, device=logp.device)
              .unsqueeze(1) + logp).flatten()                      # (K * V,)
    best = totals.topk(min(2 * width, totals.numel()))
    kept, rows, finished = [], [], []
    for rank, (total, index) in enumerate(zip(best.values.tolist(), best.indices.tolist())):
        row, token = divmod(index, V)
        node = live[row][0].extend(token, rule)
        if rule is not None and rule.ends(node.tail, node.lines) is not None:
            if rank < width:
                finished.append((node, total))
        elif len(kept) < width:
            kept.append((node, total))
            rows.append(row)
    return kept, rows, finished
