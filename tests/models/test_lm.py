"""The character LM: shapes, state carried across chunks, construction from the config."""

import pytest
import torch

from charlm.config import ModelConfig
from charlm.config.cells import CELLS
from charlm.models.lm import CharLM, create_model
from charlm.models.state import detach_hidden, map_hidden

V = 50


@pytest.mark.parametrize("cell", list(CELLS))
def test_shapes(cell):
    model = CharLM(V, cell, embedding_size=8, hidden_size=16, num_layers=3)
    logits, hidden = model(torch.randint(0, V, (4, 7)))
    assert logits.shape == (4, 7, V)
    for h in hidden if isinstance(hidden, tuple) else (hidden,):
        assert h.shape == (3, 4, 16)
    assert (len(CELLS[cell].state) == 2) == isinstance(hidden, tuple)  # (h, c) for the LSTM


@pytest.mark.parametrize("cell", list(CELLS))
def test_carrying_state_over_two_chunks_equals_one_pass(cell):
    torch.manual_seed(0)
    model = CharLM(V, cell, 8, 16, 2).eval()
    ids = torch.randint(0, V, (3, 20))
    whole, _ = model(ids)
    first, h = model(ids[:, :12])
    second, _ = model(ids[:, 12:], detach_hidden(h))
    # 1e-5: a log-space scan (minGRU, minLSTM) sums logs, which rounds a little differently
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", list(CELLS))
def test_reading_a_long_text_in_chunks_equals_one_pass(cell):
    """read() keeps only the last scores and the state; chunking changes neither."""
    torch.manual_seed(0)
    model = CharLM(20, cell, 8, 16, 2).eval()
    ids = torch.randint(0, 20, (3, 50))
    with torch.no_grad():
        logits, hidden = model(ids)
        last, read_hidden = model.read(ids, chunk=7)
    assert last.shape == (3, 20)
    torch.testing.assert_close(last, logits[:, -1], rtol=1e-5, atol=1e-5)
    for a, b in zip(map_hidden(hidden, lambda h: [h]), map_hidden(read_hidden, lambda h: [h])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_unknown_cell_lists_valid_ones():
    with pytest.raises(ValueError, match=", ".join(CELLS)):
        CharLM(V, "transformer")


def test_single_layer_dropout_raises_no_torch_warning(recwarn):
    create_model(ModelConfig(num_layers=1, dropout=0.3), V)
    assert not [w for w in recwarn if "dropout" in str(w.message)]


def test_detach_hidden_cuts_the_graph():
    h = (torch.ones(1, 2, 3, requires_grad=True) * 2, torch.ones(1, 2, 3, requires_grad=True) * 2)
    assert all(not t.requires_grad for t in detach_hidden(h))
    assert detach_hidden(None) is None
