"""Sampling: temperature, top-k and nucleus (top-p) draws with a carried state.

The priming text runs through the model once (in chunks, at batch 1); after that each new
character costs one :meth:`~charlm.models.CharLM.step` with the carried hidden state (O(1)
work per character, never a re-run of the prefix). Several samples are generated together as
one batch, and each ends on its own (:mod:`charlm.generation.stopping`).

Shape legend: B samples, T time steps, V vocab size.

References:
    Holtzman et al. 2019, "The curious case of neural text degeneration" (nucleus sampling).
"""

from __future__ import annotations

import logging
from typing import Iterator

import torch

from charlm.generation.limits import check_top_k  # noqa: F401 (its old home)
from charlm.generation.prime import prime_text
from charlm.models.lm import CharLM, eval_mode
from charlm.models.state import map_hidden
from charlm.system.threads import threads_for

logger = logging.getLogger(__name__)


def pick_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
              top_p: float | None = None, generator: torch.Generator | None = None
              ) -> torch.Tensor:
    """Draw one id per row.

    Args:
        logits: (B, V) unnormalised scores.
        temperature: divides the logits; 0 means greedy (argmax).
        top_k: keep only the k highest-scoring ids.
        top_p: keep the smallest set of most likely ids whose probability reaches top_p.
        generator: torch RNG for repeatable draws.
    Returns:
        (B,) int64 ids.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    # The best id scores 0 before the division, so no positive temperature, however small,
    # overflows: a tiny one gives the argmax probability 1 (float64 where the device has it).
    wide = torch.float32 if logits.device.type == "mps" else torch.float64
    logits = logits.to(wide)
    drop = None
    if top_k is not None and top_k < logits.size(-1):  # chosen on the scores as they are
        drop = logits < torch.topk(logits, top_k, dim=-1).values[..., -1:]
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if drop is not None:
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(dim=-1) - sorted_p >= top_p
        outside[..., 0] = False                       # the most likely id always stays
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class Sampler:
    """B samples drawn one character at a time, the hidden state carried between calls.

    Text given to :meth:`feed` runs through the model once, in chunks; each :meth:`draw`
    then costs one :meth:`~charlm.models.CharLM.step`. The character just drawn is read
    lazily, by the next :meth:`draw` or :meth:`feed`: ``n`` draws make ``n - 1`` steps, and
    the state can still be continued with more text afterwards (an interactive session).

    Args:
        model: a CharLM in eval mode.
        num_samples: B, samples drawn together (each row its own state).
        temperature, top_k, top_p: as :func:`pick_next`; may be changed between draws.
        generator: torch RNG for repeatable draws.
    """

    def __init__(self, model: CharLM, num_samples: int = 1, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> None:
        self.model, self.num_samples, self.generator = model, num_samples, generator
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.reset()

    def reset(self) -> None:
        """Forget everything read: the next :meth:`feed` starts from a zero state."""
        self.hidden, self.logits, self._pending = None, None, None

    @torch.inference_mode()
    def feed(self, ids: torch.Tensor) -> None:
        """Read ``ids``, (T,) int64 with T >= 1, on the model's device (the same text for
        every sample) on top of the state.

        From a fresh state the text is read once, at batch 1, and its state copied to the B
        rows; on top of drawn text each row reads it. Either way in chunks
        (:meth:`~charlm.models.CharLM.read`): memory does not grow with T.
        """
        self._read_pending()
        if self.hidden is None:
            logits, hidden = self.model.read(ids.unsqueeze(0))             # (1, V)
            B = self.num_samples
            self.logits = logits.expand(B, -1)                             # (B, V)
            self.hidden = map_hidden(hidden, lambda h: h.expand(-1, B, -1).contiguous())
        else:
            self.logits, self.hidden = self.model.read(
                ids.unsqueeze(0).expand(self.num_samples, -1), self.hidden)  # (B, V)

    @torch.inference_mode()
    def draw(self) -> torch.Tensor:
        """(B,) int64 ids of the next character of each sample.

        Raises:
            RuntimeError: if nothing was fed since the start or the last :meth:`reset`.
        """
        self._read_pending()
        if self.logits is None:
            raise RuntimeError("Sampler.draw before any feed: feed a prime first")
        self._pending = pick_next(self.logits, self.temperature, self.top_k, self.top_p,
                                  self.generator)
        return self._pending

    def _read_pending(self) -> None:
        """Step the model over the character drawn last, if it has not been read yet."""
        if self._pending is not None:
            self.logits, self.hidden = self.model.step(self._pending, self.hidden)
            self._pending = None


def generate(model: CharLM, prime_ids: torch.Tensor, length: int, num_samples: int = 1,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield ``length`` new characters for ``num_samples`` samples, one step at a time.

    Args:
        model: a trained CharLM; it is put in eval mode (and restored afterwards).
        prime_ids: (T0,) int64 ids of the priming text, T0 >= 1, on the model's device.
        length: characters to generate after the prime.
        num_samples: B, samples generated together.
    Yields:
        (B,) int64 ids of the next character of each sample.
    """
    with eval_mode(model), threads_for(num_samples, prime_ids.device):
        sampler = Sampler(model, num_samples, temperature, top_k, top_p, generator)
        sampler.feed(prime_ids)                                   # the prefix runs once
        for _ in range(length):
            yield sampler.draw()


def sample_text(model: CharLM, vocab, prime: str, length: int, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None, seed: int = 0) -> str:
    """One seeded sample as a string (prime not included), e.g. for TensorBoard.

    Raises:
        DataError: if ``prime`` holds characters outside ``vocab``.
    """
    device = next(model.parameters()).device
    _, prime_ids = prepare_prime(vocab, prime)
    gen = torch.Generator(device=device).manual_seed(seed)
    steps = generate(model, prime_ids.to(device), length, 1, temperature, top_k, top_p, gen)
    return vocab.decode(torch.cat(list(steps)).tolist()) if length else ""


def prepare_prime(vocab, prime: str | None, drop_unknown: bool = False,
                  fix: str = "remove them or pass --drop-unknown") -> tuple[str, torch.Tensor]:
    """The priming text to show and the (T0,) int64 ids to feed (:func:`prime_text`).

    Raises:
        DataError: listing the characters outside the vocabulary, and ``fix``.
    """
    shown, text = prime_text(vocab, prime, drop_unknown, fix)
    return shown, torch.from_numpy(vocab.encode(text).astype("int64"))
