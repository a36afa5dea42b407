"""Whether a query's input looks like an MNIST digit, held against all 70,000 (pure Python;
the figures measured on them are the constants below)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SIDE = 28
MIN_INK = 0.015  # below MNIST's least inked digit (1.9%)
MAX_INK = 0.40  # above MNIST's most inked digit (39.8%)
MAX_STROKE = 9.5  # pixels; MNIST's widest strokes are 9.1
MAX_GREY = 0.96  # share of lit pixels that are grey; MNIST's greyest digit has 96%
MIN_TOP = 0.5  # below even odds, the model does not recognise the digit


@dataclass(frozen=True)
class Likeness:
    """Whether nothing about an input is unlike an MNIST digit, and a sentence saying so."""

    like_mnist: bool
    note: str


def mnist_likeness(pixels: Sequence[float], top_probability: float) -> Likeness:
    """Hold 784 pixels as sent (row by row, in [0, 1]) and the probability of the predicted
    digit against MNIST: whether the image looks like a digit, and a note saying why not.
    """
    values = [float(p) for p in pixels]
    ink = [p > 0.5 for p in values]
    area = sum(ink)
    share = area / len(values)
    lit = sum(p > 0.1 for p in values)
    grey = sum(0.1 < p < 0.9 for p in values) / max(lit, 1)
    reasons = []
    if share < MIN_INK:
        reasons.append(f"too little ink ({share:.1%} of the pixels; MNIST digits have 2% to 40%)")
    elif share > MAX_INK:
        reasons.append(f"too much ink ({share:.0%} of the pixels; MNIST digits have 2% to 40%)")
    if area and (width := _stroke_width(ink)) > MAX_STROKE:
        reasons.append(
            f"no strokes: the ink is one blob {width:.0f} pixels thick (MNIST's strokes are 2 to 9)"
        )
    elif grey > MAX_GREY:
        reasons.append(f"no strokes: {grey:.0%} of the lit pixels are grey, like noise")
    if top_probability < MIN_TOP:
        reasons.append(f"the model is unsure (its top answer has {top_probability:.0%})")
    if not reasons:
        return Likeness(True, "looks like an MNIST digit")
    return Likeness(
        False,
        "unlike an MNIST digit: "
        + "; ".join(reasons)
        + ". The model only knows digits, so its answer may mean nothing here.",
    )


def _stroke_width(ink: list[bool]) -> float:
    """Twice the ink's area over its boundary (ink pixels with a 4-neighbour that is not ink)."""
    area = boundary = 0
    for index, on in enumerate(ink):
        if not on:
            continue
        area += 1
        row, col = divmod(index, SIDE)
        neighbours = (
            row > 0 and ink[index - SIDE],
            row < SIDE - 1 and ink[index + SIDE],
            col > 0 and ink[index - 1],
            col < SIDE - 1 and ink[index + 1],
        )
        boundary += not all(neighbours)
    return 2 * area / max(boundary, 1)
