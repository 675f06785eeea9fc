"""Beam search: width 1 is greedy decoding, a wider beam is never less probable than greedy,
a wide enough beam equals exhaustive search, and stop rules and the length penalty rank
beams of different lengths."""

import itertools

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from charlm.generation.beam import beam_search, length_penalty
from charlm.generation.sampling import generate
from charlm.generation.stopping import StopRule
from charlm.models.lm import CharLM

PRIME = torch.tensor([0, 1])


def tiny_model(seed: int, vocab_size: int = 3, cell: str = "lstm") -> CharLM:
    """A small random model whose distributions are far from uniform (weights scaled up),
    so that greedy, beam and exhaustive search disagree often."""
    torch.manual_seed(seed)
    model = CharLM(vocab_size, cell, 4, 8, 1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)
    return model.eval()


def logprobs(model: CharLM, continuations: torch.Tensor) -> torch.Tensor:
    """(S,) float64 log-probability of each (S, T) continuation of PRIME, all scored by one
    fused forward pass (the common yardstick for every search)."""
    S = continuations.shape[0]
    text = torch.cat([PRIME.expand(S, -1), continuations], 1)     # (S, 2 + T)
    with torch.no_grad():
        logits, _ = model(text[:, :-1])
    logp = torch.log_softmax(logits.double(), -1)[:, len(PRIME) - 1:]  # (S, T, V)
    return logp.gather(2, continuations.unsqueeze(2)).squeeze(2).sum(1)


def exhaustive(model: CharLM, length: int) -> float:
    every = torch.tensor(list(itertools.product(range(3), repeat=length)))  # (3 ** T, T)
    return logprobs(model, every).max().item()


def score(model: CharLM, ids) -> float:
    return logprobs(model, torch.tensor([list(ids)])).item()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_width_1_is_greedy_decoding(cell):
    model = tiny_model(0, 10, cell)
    greedy = [int(i) for i in generate(model, PRIME, 30, temperature=0)]
    assert list(beam_search(model, PRIME, 30, 1)[0].ids) == greedy


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), vocab_size=st.integers(3, 6), width=st.integers(2, 6))
@example(seed=170, vocab_size=5, width=2)  # plain beam search loses to greedy here
def test_beam_is_never_below_greedy_nor_above_exhaustive(seed, vocab_size, width):
    model = tiny_model(seed, vocab_size)
    greedy = score(model, beam_search(model, PRIME, 6, 1)[0].ids)
    best = beam_search(model, PRIME, 6, width)[0]
    assert score(model, best.ids) >= greedy - 1e-6
    assert vocab_size > 3 or score(model, best.ids) <= exhaustive(model, 6) + 1e-6
    assert best.logprob == pytest.approx(score(model, best.ids), abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_beam_that_keeps_every_prefix_equals_exhaustive_search(seed):
    model = tiny_model(seed)
    best = beam_search(model, PRIME, 6, 3 ** 5)[0]  # every prefix of 5 kept: exact
    assert best.logprob == pytest.approx(exhaustive(model, 6), abs=1e-5)


def test_top_beams_are_distinct_and_sorted():
    beams = beam_search(tiny_model(3, 5), PRIME, 12, 4, num_results=4)
    assert len(beams) == 4 and len({b.ids for b in beams}) == 4
    assert [b.logprob for b in beams] == sorted((b.logprob for b in beams), reverse=True)
    assert beam_search(tiny_model(3), PRIME, 0, 2)[0].ids == ()


def test_stop_rule_ends_beams_and_the_length_penalty_ranks_lengths():
    model = tiny_model(4, 5)
    rule = StopRule(((2,),))
    for beam in beam_search(model, PRIME, 15, 4, num_results=4, rule=rule):
        assert 2 not in beam.ids[:-1] and (beam.ids[-1] == 2 or len(beam.ids) == 15)
    penalised = beam_search(model, PRIME, 15, 4, num_results=4, alpha=1.0, rule=rule)
    for beam in penalised:
        assert beam.score == pytest.approx(beam.logprob / length_penalty(len(beam.ids), 1.0))
    assert length_penalty(7, 0.0) == 1.0 and length_penalty(1, 1.0) == 1.0


def test_a_beam_extends_its_parent_without_copying_its_ids():
    """Each beam links to the one it extends and keeps only the tail its stop rule needs: a
    search costs O(W x length), where copying each beam's ids made it O(W x length^2)."""
    from charlm.generation.beam import _Node

    rule, node = StopRule(((1, 2, 3),), 0, 50), _Node(None, -1, 0, ())
    for token in [0, 1, 2, 0, 3] * 200:
        node = node.extend(token, rule)
    assert len(node.tail) == rule.kept == 3 and node.length == 1000 and node.lines == 400
    assert node.ids() == tuple([0, 1, 2, 0, 3] * 200) and node.tail == (2, 0, 3)
