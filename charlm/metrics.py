"""Unit conversions and unit labels for language-model losses: the one place nats, bits,
perplexity and their names meet.

A loss in nats/char is the mean negative natural-log likelihood of the next character; bits per
character (bpc) is the same quantity in base 2 (divide by ln 2); perplexity is exp(nats). A
``data.unit: byte`` model predicts bytes, so its figures are per byte (nats/byte, bits/byte).
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


def loss_unit(unit: str = "char") -> str:
    """``nats/char`` or ``nats/byte``: the unit of a loss for ``data.unit``."""
    return f"nats/{unit}"


def bits_unit(unit: str = "char") -> str:
    """``bpc`` for characters, ``bits/byte`` for bytes."""
    return "bpc" if unit == "char" else f"bits/{unit}"


def unit_noun(unit: str = "char") -> str:
    """``character`` or ``byte``: what one id of a ``data.unit`` model stands for."""
    return "character" if unit == "char" else unit


def describe_loss(loss_nats: float, unit: str = "char") -> str:
    """``1.4486 nats/char, 2.0898 bpc``: a loss in both units."""
    return (f"{loss_nats:.4f} {loss_unit(unit)}, {nats_to_bits(loss_nats):.4f} "
            f"{bits_unit(unit)}")
