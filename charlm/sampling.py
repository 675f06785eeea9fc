"""Text generation: temperature, top-k and nucleus (top-p) sampling with a carried state.

The priming text runs through the model once; after that each new character costs one
:meth:`~charlm.models.CharLM.step` with the carried hidden state (O(1) work per character,
never a re-run of the prefix). Several samples are generated together as one batch.

Shape legend: B samples, T time steps, V vocab size.

References:
    Holtzman et al. 2019, "The curious case of neural text degeneration" (nucleus sampling).
"""

from __future__ import annotations

import logging
import math
from typing import Iterator

import torch

from charlm.data import format_chars, normalize_newlines
from charlm.errors import DataError, SamplingError
from charlm.models import CharLM, eval_mode

logger = logging.getLogger(__name__)


def check_options(vocab_size: int, temperature: float, top_k: int | None,
                  top_p: float | None, length: int) -> None:
    """Validate sampling options before any work.

    Raises:
        SamplingError: naming the option, its value and the allowed range.
    """
    if not math.isfinite(temperature) or temperature < 0:
        raise SamplingError(f"temperature is {temperature}; use 0 (greedy) or a positive value")
    if top_k is not None and not 1 <= top_k <= vocab_size:
        raise SamplingError(f"top_k is {top_k}; it must be between 1 and the vocabulary "
                            f"size {vocab_size}")
    if top_p is not None and not 0 < top_p <= 1:  # also refuses nan
        raise SamplingError(f"top_p is {top_p}; it must be in (0, 1]")
    if length < 0:
        raise SamplingError(f"length is {length}; it must be 0 or more")


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


@torch.inference_mode()
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
    with eval_mode(model):
        ids = prime_ids.unsqueeze(0).expand(num_samples, -1)   # (B, T0)
        logits, hidden = model(ids)                              # prefix runs once
        logits = logits[:, -1]                                   # (B, V)
        for i in range(length):
            nxt = pick_next(logits, temperature, top_k, top_p, generator)  # (B,)
            yield nxt
            if i + 1 < length:
                logits, hidden = model.step(nxt, hidden)          # (B, V)


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


def prepare_prime(vocab, prime: str | None, drop_unknown: bool = False
                  ) -> tuple[str, torch.Tensor]:
    """The priming text to show and the (T0,) int64 ids to feed.

    Args:
        prime: the user's text (line endings normalised as in training, except for a byte
            model, which sees bytes as given), or None for :func:`default_prime`, which is fed
            but not shown.
        drop_unknown: remove characters the model never saw instead of raising.
    Raises:
        DataError: listing the characters outside the vocabulary (and the option that drops
            them), or when nothing is left to prime with.
    """
    text = default_prime(vocab) if prime is None else \
        normalize_newlines(prime) if vocab.unit == "char" else prime
    unknown = vocab.unknown(text)
    if unknown and not drop_unknown:
        raise DataError(f"the prime has {len(unknown)} character(s) the model never saw: "
                        f"{format_chars(unknown)}; remove them or pass --drop-unknown")
    if unknown:
        logger.warning("dropped from the prime: %s", format_chars(unknown))
        text = "".join(c for c in text if c in vocab)
    if not text:
        text, prime = default_prime(vocab), ""
    ids = torch.from_numpy(vocab.encode(text).astype("int64"))
    return ("" if prime is None else text if prime else ""), ids


def default_prime(vocab) -> str:
    """A newline when the vocabulary has one (text starts a line), else its first character."""
    return "\n" if "\n" in vocab else vocab.chars[0]

