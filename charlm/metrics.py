"""Unit conversions for language-model losses: the one place nats, bits and perplexity meet.

A loss in nats/char is the mean negative natural-log likelihood of the next character; bits per
character (bpc) is the same quantity in base 2 (divide by ln 2); perplexity is exp(nats).
"""

import math

LN2 = math.log(2.0)


def nats_to_bits(loss_nats: float) -> float:
    """Convert a loss in nats/char to bits/char (bpc)."""
    return loss_nats / LN2


def bits_to_nats(bpc: float) -> float:
    """Convert bits/char (bpc) to nats/char."""
    return bpc * LN2


def perplexity(loss_nats: float) -> float:
    """Per-character perplexity exp(loss) of a loss in nats/char; ``inf`` when it overflows."""
    try:
        return math.exp(loss_nats)
    except OverflowError:
        return math.inf
