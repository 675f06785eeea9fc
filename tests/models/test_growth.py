"""Growing a trained model's vocabulary: the old characters' logits stay, new ones start rare."""

import math

import pytest
import torch

from charlm.data.vocab import Vocab, grown_vocab
from charlm.models.growth import grow_vocab_rows
from charlm.models.lm import CharLM


@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru"])
def test_grown_model_gives_old_characters_the_same_logits_and_new_ones_a_low_bias(cell):
    torch.manual_seed(0)
    old_vocab = Vocab("bdfhx")
    vocab, old_to_new, added = grown_vocab(old_vocab, Vocab("Aabcz"))
    assert vocab.chars == "Aabcdfhxz" and added == ["A", "a", "c", "z"]
    old = CharLM(old_vocab.size, cell, embedding_size=8, hidden_size=16, num_layers=2).eval()
    state, bias = grow_vocab_rows(old.state_dict(), old_to_new, vocab.size)
    new = CharLM(vocab.size, cell, embedding_size=8, hidden_size=16, num_layers=2).eval()
    new.load_state_dict(state)
    text = "bdfhxxhdb" * 3
    with torch.no_grad():
        before, _ = old(torch.from_numpy(old_vocab.encode(text).astype("int64"))[None])
        after, _ = new(torch.from_numpy(vocab.encode(text).astype("int64"))[None])
    torch.testing.assert_close(after[..., old_to_new], before, rtol=0, atol=1e-6)
    fresh = [vocab.chars.index(c) for c in added]
    assert torch.all(after[..., fresh] == bias)  # a constant logit, whatever the state
    assert bias == pytest.approx(old.decoder.bias.min().item() - math.log(old_vocab.size))
    torch.testing.assert_close(state["embedding.weight"][fresh[0]],
                               old.embedding.weight.mean(0).detach())


def test_nothing_to_add_keeps_the_vocabulary_and_a_bad_map_is_refused():
    vocab = Vocab("abc")
    assert grown_vocab(vocab, Vocab("ab")) == (vocab, [0, 1, 2], [])
    with pytest.raises(ValueError, match="distinct ids below 4"):
        grow_vocab_rows(CharLM(3, "lstm", 4, 8, 1).state_dict(), [0, 0, 1], 4)
