"""Sampling: seeded and repeatable, one step per character, top-k and nucleus restrictions
(for any logits), option checks and priming, a state carried between calls, and where
continuations end (stop strings, line limits)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.config import build_config
from charlm.data.vocab import ByteVocab
from charlm.errors import ConfigError
from charlm.generation.sampling import (
    Sampler,
    check_top_k,
    generate,
    pick_next,
    prepare_prime,
)
from charlm.models.lm import READ_CHUNK, CharLM

V = 30


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CharLM(V, "lstm", 8, 32, 2)


def run(model, seed, **kw):
    gen = torch.Generator().manual_seed(seed)
    steps = generate(model, torch.tensor([1, 2, 3]), 40, generator=gen, **kw)
    return torch.stack(list(steps), 1)


def test_seeded_sampling_repeats(model):
    assert torch.equal(run(model, 5), run(model, 5))
    assert not torch.equal(run(model, 5), run(model, 6))


def test_top_k_1_equals_greedy_equals_temperature_0(model):
    greedy = run(model, 1, temperature=0)
    assert torch.equal(run(model, 2, top_k=1), greedy)
    assert torch.equal(run(model, 3, top_p=1e-6), greedy)


def test_top_k_and_top_p_restrict_the_choice():
    logits = torch.tensor([[5.0, 4.0, 3.0, -9.0, -9.0]]).repeat(2000, 1)
    gen = torch.Generator().manual_seed(0)
    assert set(pick_next(logits, top_k=2, generator=gen).tolist()) == {0, 1}
    picks = pick_next(logits, top_p=0.8, generator=gen).tolist()  # p = .665, .245, .09
    assert set(picks) == {0, 1}


def test_generation_is_one_step_per_character(model):
    """The prefix runs once; every later step embeds exactly one new character."""
    lengths = []
    handle = model.embedding.register_forward_hook(lambda m, i, o: lengths.append(i[0].shape[1]))
    steps = list(generate(model, torch.tensor([1, 2, 3, 4]), 25, num_samples=3))
    handle.remove()
    assert lengths[0] == 4 and lengths[1:] == [1] * 24 and steps[0].shape == (3,)


def test_a_long_prime_is_read_once_at_batch_1_in_bounded_chunks(model):
    """Samples share their prime: it runs through the core once, at batch 1, in chunks of
    READ_CHUNK, and only its last position is decoded (before: B rows at once, and every
    position's scores kept: a 100 KB prime with 64 samples held gigabytes)."""
    shapes, decoded = [], []
    hooks = [model.core.register_forward_hook(lambda m, i, o: shapes.append(i[0].shape[:2])),
             model.decoder.register_forward_hook(lambda m, i, o: decoded.append(i[0].shape))]
    prime = torch.randint(0, V, (3 * READ_CHUNK + 5,))
    steps = torch.stack(list(generate(model, prime, 4, num_samples=6, temperature=0)), 1)
    for hook in hooks:
        hook.remove()
    assert shapes[:4] == [(1, READ_CHUNK)] * 3 + [(1, 5)] and decoded[0] == (1, 32)
    with torch.no_grad():
        logits, _ = model.eval()(prime.unsqueeze(0))
    assert steps.shape == (6, 4) and (steps[:, 0] == logits[0, -1].argmax()).all()


def test_beam_search_reads_a_long_prime_in_bounded_chunks(model):
    from charlm.generation.beam import beam_search

    shapes = []
    hook = model.core.register_forward_hook(lambda m, i, o: shapes.append(i[0].shape[:2]))
    prime = torch.randint(0, V, (2 * READ_CHUNK + 1,))
    best = beam_search(model, prime, 5, beam_width=3)[0]
    hook.remove()
    assert max(t for _, t in shapes) <= READ_CHUNK and len(best.ids) == 5


def test_stepwise_generation_matches_the_fused_model(model):
    """Greedy text from the step-by-step cells equals greedy decoding with the fused core."""
    ids = torch.tensor([1, 2, 3])
    fast = torch.stack(list(generate(model, ids, 30, temperature=0)), 1)[0].tolist()
    seq = ids.tolist()
    with torch.no_grad():
        for _ in range(30):
            logits, _ = model.eval()(torch.tensor([seq]))
            seq.append(int(logits[0, -1].argmax()))
    assert fast == seq[3:]


def test_generation_restores_training_mode(model):
    model.train()
    list(generate(model, torch.tensor([1]), 3))
    assert model.training


@pytest.mark.parametrize("key, value, message", [
    ("temperature", -1, "sample.temperature (--temperature) is -1.0; it must be >= 0"),
    ("temperature", float("nan"), "sample.temperature (--temperature) is nan; it must be a "
                                  "finite number"),
    ("top_k", 0, "sample.top_k (--top-k) is 0; it must be >= 1"),
    ("top_p", 0.0, "sample.top_p (--top-p) is 0.0; it must be > 0"),
    ("top_p", 1.5, "sample.top_p (--top-p) is 1.5; it must be <= 1"),
    ("length", -2, "sample.length (--length) is -2; it must be >= 0"),
])
def test_sampling_options_are_checked_by_the_config_schema(key, value, message):
    flags = {f"sample.{key}": f"--{key.replace('_', '-')}"}
    with pytest.raises(ConfigError) as info:
        build_config(options={f"sample.{key}": value}, flags=flags)
    assert str(info.value) == message


def test_top_k_may_not_exceed_the_vocabulary():
    check_top_k(V, V)
    with pytest.raises(ConfigError, match="sample.top_k is 31 but the vocabulary has 30 "
                                          "entries; lower it with --top-k"):
        check_top_k(V + 1, V)


def test_byte_prime_keeps_its_bytes():
    _, ids = prepare_prime(ByteVocab(), "a\r\nb é")
    assert bytes(ids.tolist()) == "a\r\nb é".encode()


LOGITS = st.lists(st.floats(-30, 30, width=32), min_size=2, max_size=40)
DRAWS = 300  # rows drawn from the same logits


def draws(logits: list[float], seed: int, **kw) -> set[int]:
    rows = torch.tensor(logits).repeat(DRAWS, 1)
    return set(pick_next(rows, generator=torch.Generator().manual_seed(seed), **kw).tolist())


@settings(max_examples=100, deadline=None)
@given(logits=LOGITS, data=st.data(), seed=st.integers(0, 2**31))
def test_top_k_never_samples_outside_the_k_highest(logits, data, seed):
    k = data.draw(st.integers(1, len(logits)))
    kth = sorted(logits, reverse=True)[k - 1]
    allowed = {i for i, v in enumerate(logits) if v >= kth}  # ties with the k-th count too
    assert draws(logits, seed, top_k=k) <= allowed


@settings(max_examples=100, deadline=None)
@given(logits=LOGITS, top_p=st.floats(0.01, 1.0), seed=st.integers(0, 2**31))
def test_top_p_never_samples_outside_the_nucleus(logits, top_p, seed):
    p = torch.softmax(torch.tensor(logits), 0).tolist()  # float32, as pick_next computes it
    # the smallest set of most likely ids reaching top_p: i is in it when the ids strictly
    # more likely than i hold less than top_p (ties at the edge may go either way; 1e-6
    # allows for the rounding of a float32 running sum)
    allowed = {i for i, pi in enumerate(p) if sum(q for q in p if q > pi) < top_p + 1e-6}
    assert draws(logits, seed, top_p=top_p) <= allowed


def test_sampler_carries_the_state_across_feeds(model):
    """Feeding more text after some draws continues the text: the same as reading the
    prime, the drawn characters and the new text in one go (what /keep relies on)."""
    kept = Sampler(model.eval(), temperature=0)
    kept.feed(torch.tensor([1, 2, 3]))
    drawn = [int(kept.draw()[0]) for _ in range(5)]
    kept.feed(torch.tensor([4, 5]))
    fresh = Sampler(model, temperature=0)
    fresh.feed(torch.tensor([1, 2, 3, *drawn, 4, 5]))
    assert [int(kept.draw()[0]) for _ in range(8)] == [int(fresh.draw()[0]) for _ in range(8)]
    kept.reset()
    with pytest.raises(RuntimeError, match="feed a prime first"):
        kept.draw()
