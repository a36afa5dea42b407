"""Hand-drawn digits made with Pillow: thin and thick pens, off-centre, inverted colours.

And a drawing moved onto grey paper under uneven light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# Each digit as strokes in a unit box (x right, y down): lines through points,
# ellipses and arcs (box, start and end angle in degrees, clockwise from 3 o'clock).
STROKES: dict[int, list[tuple[str, Any]]] = {
    0: [("ellipse", (0.3, 0.15, 0.7, 0.85))],
    1: [("line", [(0.5, 0.15), (0.5, 0.85)])],
    2: [
        ("arc", (0.3, 0.15, 0.7, 0.5, 180, 360)),
        ("line", [(0.7, 0.35), (0.3, 0.85), (0.72, 0.85)]),
    ],
    3: [
        ("arc", (0.32, 0.15, 0.68, 0.5, 240, 450)),
        ("arc", (0.32, 0.5, 0.68, 0.85, 270, 480)),
    ],
    4: [("line", [(0.6, 0.85), (0.6, 0.15), (0.28, 0.62), (0.75, 0.62)])],
    5: [
        ("line", [(0.68, 0.15), (0.35, 0.15), (0.33, 0.45)]),
        ("arc", (0.3, 0.4, 0.7, 0.85, 220, 500)),
    ],
    6: [("arc", (0.3, 0.15, 0.9, 0.95, 180, 270)), ("ellipse", (0.3, 0.5, 0.68, 0.85))],
    7: [("line", [(0.3, 0.15), (0.7, 0.15), (0.42, 0.85)])],
    8: [("ellipse", (0.35, 0.15, 0.65, 0.48)), ("ellipse", (0.32, 0.48, 0.68, 0.85))],
    9: [("ellipse", (0.32, 0.15, 0.68, 0.5)), ("line", [(0.68, 0.32), (0.62, 0.85)])],
}

# How a person might draw: a fine pen, a marker, in a corner, light on dark.
STYLES: dict[str, dict[str, Any]] = {
    "thin": {"width": 6},
    "thick": {"width": 22},
    "off-centre": {"width": 12, "box": (0.45, 0.4, 0.95, 0.95)},
    "inverted": {"width": 14, "invert": True},
}


def draw_digit(
    digit: int,
    path: Path,
    *,
    width: int,
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    invert: bool = False,
    size: int = 200,
) -> Path:
    """Draw `digit` with a pen `width` pixels wide inside `box` of a `size`-pixel canvas."""
    paper, ink = (0, 255) if invert else (255, 0)
    image = Image.new("L", (size, size), paper)
    pen = ImageDraw.Draw(image)
    left, top, right, bottom = box

    def x(u: float) -> float:
        return size * (left + (right - left) * u)

    def y(v: float) -> float:
        return size * (top + (bottom - top) * v)

    for kind, spec in STROKES[digit]:
        if kind == "line":
            pen.line([(x(u), y(v)) for u, v in spec], fill=ink, width=width, joint="curve")
        elif kind == "ellipse":
            pen.ellipse([x(spec[0]), y(spec[1]), x(spec[2]), y(spec[3])], outline=ink, width=width)
        else:
            corners = [x(spec[0]), y(spec[1]), x(spec[2]), y(spec[3])]
            pen.arc(corners, spec[4], spec[5], fill=ink, width=width)
    image.save(path)
    return path


def draw_all(folder: Path) -> list[tuple[int, str, Path]]:
    """Every digit in every style: (digit, style, PNG path)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        (digit, style, draw_digit(digit, folder / f"{digit}-{style}.png", **options))
        for digit in STROKES
        for style, options in STYLES.items()
    ]


def on_grey_paper(drawing: Path, path: Path) -> Path:
    """A drawing (dark on white) as if on grey paper under uneven light, with a soft pencil.

    The light falls from 90 in one corner to 230 in the other, and the pencil
    swallows 45% of it: a flat threshold finds the dark corner darker than the
    strokes in the light one.
    """
    reflectance = np.asarray(Image.open(drawing).convert("L"), dtype=np.float32) / 255
    rows, cols = np.indices(reflectance.shape)
    light = 90 + 140 * (rows + cols) / (rows.max() + cols.max())
    grey = light * (0.55 + 0.45 * reflectance)
    Image.fromarray(np.rint(grey).astype(np.uint8)).save(path)
    return path
