"""Text generation: temperature, top-k and nucleus (top-p) sampling with a carried state,
and where a continuation ends (stop strings, line limits).

The priming text runs through the model once; after that each new character costs one
:meth:`~charlm.models.CharLM.step` with the carried hidden state (O(1) work per character,
never a re-run of the prefix). Several samples are generated together as one batch, and
each ends on its own (:class:`StopRule`, :class:`Continuation`).

Shape legend: B samples, T time steps, V vocab size.

References:
    Holtzman et al. 2019, "The curious case of neural text degeneration" (nucleus sampling).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from charlm.data import format_chars, normalize_newlines
from charlm.errors import DataError, SamplingError
from charlm.models import CharLM, eval_mode
from charlm.system.runtime import threads_for

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


class Sampler:
    """B samples drawn one character at a time, the hidden state carried between calls.

    Text given to :meth:`feed` runs through the model in one forward pass; each :meth:`draw`
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
        every sample) on top of the state."""
        self._read_pending()
        logits, self.hidden = self.model(ids.unsqueeze(0).expand(self.num_samples, -1),
                                         self.hidden)              # (B, T, V)
        self.logits = logits[:, -1]                                # (B, V)

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
        found = [len(s) for s in self.stops if len(ids) >= len(s) and
                 tuple(ids[len(ids) - len(s):]) == s]
        if found:
            return max(found)
        if self.max_lines is not None and ids and ids[-1] == self.newline and \
                ids.count(self.newline) >= self.max_lines:
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
            raise SamplingError(f"--stop {stop!r} " + (
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
        self.done = False
        self._given = 0  # ids already returned

    def push(self, token: int) -> list[int]:
        """Add the next id; return the ids that became final (possibly none)."""
        self.ids.append(token)
        end = self.rule.match(self.ids)
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


def continuations(steps: Iterable[torch.Tensor], num_samples: int, rule: StopRule,
                  strip: bool = False) -> list[list[int]]:
    """Each sample's ids from :func:`generate`'s steps, each cut by ``rule`` on its own; the
    generation stops early once every sample has ended.

    Args:
        steps: (B,) int64 ids per step, B = ``num_samples``.
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
