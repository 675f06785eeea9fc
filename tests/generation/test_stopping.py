"""Where continuations end: stop strings and line limits, for any ids (hypothesis), each sample on
its own, and stop strings checked against the vocabulary."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.data.vocab import ByteVocab, Vocab
from charlm.errors import SamplingError
from charlm.generation.stopping import (
    Continuation,
    StopRule,
    continuations,
    make_stop_rule,
)

IDS = st.lists(st.integers(0, 3), max_size=40)
STOPS = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple), min_size=1,
                 max_size=3)


def first_end(ids: list[int], stops) -> tuple[int, int] | None:
    """Reference: (end, length) of the stop string that completes first in ``ids``."""
    for end in range(1, len(ids) + 1):
        found = [len(s) for s in stops if tuple(ids[max(0, end - len(s)):end]) == s]
        if found:
            return end, max(found)
    return None


def pushed(ids: list[int], rule: StopRule, strip: bool) -> tuple[list[int], bool]:
    """The ids a :class:`Continuation` gives out when fed ``ids`` until it is done."""
    sample, out = Continuation(rule, strip), []
    for token in ids:
        out += sample.push(token)
        if sample.done:
            break
    return out + sample.finish(), sample.done


@settings(max_examples=200, deadline=None)
@given(ids=IDS, stops=STOPS, strip=st.booleans())
def test_a_continuation_ends_right_after_the_first_stop_string(ids, stops, strip):
    out, done = pushed(ids, StopRule(tuple(stops)), strip)
    end = first_end(ids, stops)
    assert done == (end is not None)
    if end is None:
        assert out == ids
        return
    at, n = end
    assert out == ids[:at - n if strip else at]
    # kept: it ends with a stop string, and none completes earlier; stripped: none in it
    assert strip or any(tuple(out[len(out) - len(s):]) == s for s in stops)
    assert first_end(out[:-1] if not strip else out, stops) is None


@settings(max_examples=100, deadline=None)
@given(ids=IDS, max_lines=st.integers(1, 4))
def test_a_line_limit_keeps_exactly_that_many_newlines(ids, max_lines):
    newline = 0
    out, done = pushed(ids, StopRule((), newline, max_lines), strip=True)
    assert done == (ids.count(newline) >= max_lines)
    assert out.count(newline) == min(max_lines, ids.count(newline))
    assert not done or out[-1] == newline


def test_each_sample_stops_on_its_own():
    steps = [torch.tensor(row) for row in ([1, 1], [2, 1], [3, 2], [2, 3], [1, 1])]
    rule = StopRule(((2, 3),))
    assert continuations(iter(steps), 2, rule) == [[1, 2, 3], [1, 1, 2, 3]]
    assert continuations(iter(steps), 2, rule, strip=True) == [[1], [1, 1]]


def test_stop_strings_are_checked_against_the_vocabulary():
    vocab = Vocab("\nabc")
    assert make_stop_rule(vocab, ("ab", "\r\n"), 2) == StopRule(((1, 2), (0,)), 0, 2)
    assert make_stop_rule(ByteVocab(), ("é",)).stops == ((0xC3, 0xA9),)
    for stops, max_lines, message in [(("",), None, "--stop '' is empty"),
                                      (("a∮",), None, "never saw: '∮' (U+222E), so it could "
                                                      "never occur"),
                                      ((), 3, "--max-lines counts newlines, but this model's "
                                              "vocabulary has none; use --stop or --length "
                                              "instead")]:
        with pytest.raises(SamplingError, match=None) as info:
            make_stop_rule(Vocab("abc") if max_lines else vocab, stops, max_lines)
        assert message in str(info.value)


@settings(max_examples=200, deadline=None)
@given(ids=IDS, stops=st.just([]) | STOPS, max_lines=st.none() | st.integers(1, 5))
def test_checking_only_the_tail_and_a_line_count_equals_checking_every_id(ids, stops,
                                                                         max_lines):
    """What beam search and sampling check per new id (the last ``kept`` ids and a running
    newline count: O(1) per id) decides exactly what matching the whole continuation does."""
    rule = StopRule(tuple(stops), 0 if max_lines else None, max_lines)
    for n in range(len(ids) + 1):
        head = ids[:n]
        assert rule.ends(head[max(n - rule.kept, 0):], head.count(0)) == rule.match(head)
