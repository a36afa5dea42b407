"""Digits as pictures: a drawn PNG made MNIST-like as MNIST was (grayscale, paper flattened,
light on dark, cropped, thin strokes widened, 20 pixels in 28x28 by mass); the plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter, UnidentifiedImageError

from hello_kubeflow.data.mnist import scale_pixels
from hello_kubeflow.errors import QueryError

SIDE = 28
BOX = 20  # MNIST fits each digit in a 20x20 box inside the 28x28 frame
_STROKE_FRACTION = 0.2  # pixels above 20% of the brightest count as strokes
_WORK_SIDE = 5 * BOX  # stroke widths are measured and widened at most this many pixels
_PEN = 2.5  # MNIST's strokes are about 2-3 pixels wide in the 20-pixel box
_CENTRE = 14.0  # MNIST's centres of mass sit at pixel (14, 14) (measured on the test set)
_PAPER_SIDE = 64  # the paper's brightness is estimated on a picture at most this big
_PAPER_REACH = 5  # a stroke is at most 1/5 of the picture wide: the paper shows within that
PLOT_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


def load_digit_png(path: str | Path) -> npt.NDArray[np.float32]:
    """A drawn digit (a PNG, or any image Pillow reads, any size) made like an MNIST test
    image: 784 float32 pixels in [0, 1], row by row, light on dark.

    Raises:
        QueryError: the file is missing, not an image, or blank.
    """
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGBA")
    except FileNotFoundError:
        raise QueryError(
            f"--image {path}: no such file; give the path of a PNG of a digit"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise QueryError(f"--image {path} is not an image Pillow can read ({exc})") from None
    # Transparent parts of a drawing are paper: flatten onto white, then grayscale.
    paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
    gray = np.asarray(Image.alpha_composite(paper, image).convert("L"), dtype=np.float32)
    return scale_pixels(to_mnist_pixels(gray, source=str(path)))


def to_mnist_pixels(
    gray: npt.NDArray[np.floating], *, source: str = "the image"
) -> npt.NDArray[np.uint8]:
    """Grayscale picture (0-255, any size) to 784 uint8 MNIST-style pixels.

    Raises:
        QueryError: the picture has no strokes (one flat colour).
    """
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    dark_ground = float(np.median(border)) < 128
    paper = _paper(gray, dark_ground)
    # Strokes become bright on dark, whichever way round they were drawn. Dark ink on
    # paper is taken as the share of the light it swallows, so a stroke in the shadow
    # counts as much as one in full light.
    ink = gray - paper if dark_ground else (paper - gray) * (255.0 / np.maximum(paper, 1.0))
    ink = np.clip(ink, 0.0, None)
    peak = float(ink.max())
    if peak < 1.0:
        raise QueryError(f"{source} looks blank (one flat colour): draw a digit on it")
    ink = ink * (255.0 / peak)
    rows = np.flatnonzero((ink > _STROKE_FRACTION * 255).any(axis=1))
    cols = np.flatnonzero((ink > _STROKE_FRACTION * 255).any(axis=0))
    cropped = _thickened(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    height, width = cropped.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(cropped, dtype=np.float32)).resize(
            size, Image.Resampling.LANCZOS
        )
    )
    small = np.clip(small, 0.0, 255.0)
    frame = np.zeros((SIDE, SIDE), dtype=np.float32)
    top, left = _centred_offsets(small)
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    result: npt.NDArray[np.uint8] = np.rint(frame).astype(np.uint8).reshape(SIDE * SIDE)
    return result


def _paper(gray: npt.NDArray[np.floating], dark_ground: bool) -> npt.NDArray[np.float32]:
    """The paper's brightness under every pixel: a closing wider than a stroke (on a copy at
    most `_PAPER_SIDE` pixels a side) removes the strokes, and light falls smoothly across a
    page, so a quadratic surface fitted to that, away from the edges, is the paper."""
    height, width = gray.shape
    block = max(1, -(-max(height, width) // _PAPER_SIDE))
    padded = np.pad(gray, ((0, -height % block), (0, -width % block)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block)
    over, back = (np.min, np.max) if dark_ground else (np.max, np.min)
    small = over(blocks, axis=(1, 3))
    half = max(small.shape) // (2 * _PAPER_REACH)
    closed = _sliding(_sliding(small, half, over), half, back)
    inner = closed[half : closed.shape[0] - half, half : closed.shape[1] - half]
    if inner.size < 6:
        inner, half = closed, 0
    rows, cols = np.indices(inner.shape)
    v = ((rows + half + 0.5) * block - 0.5) / height
    u = ((cols + half + 0.5) * block - 0.5) / width
    terms = np.stack([np.ones_like(v), u, v, u * u, u * v, v * v]).reshape(6, -1).T
    w = [float(x) for x in np.linalg.lstsq(terms, inner.ravel(), rcond=None)[0]]
    # Evaluated by rows and columns: two passes over the full-size picture, not six.
    v = (np.arange(height, dtype=np.float32) / height)[:, None]
    u = (np.arange(width, dtype=np.float32) / width)[None, :]
    across, down = w[0] + w[1] * u + w[3] * u * u, w[2] * v + w[5] * v * v
    paper: npt.NDArray[np.float32] = (across + down) + (w[4] * v) * u
    return paper


def _sliding(image: npt.NDArray[np.floating], half: int, rank: Any) -> npt.NDArray[np.floating]:
    """`rank` (np.max or np.min) of each pixel's neighbourhood `half` pixels each way."""
    if half < 1:
        return image
    padded = np.pad(image, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * half + 1, 2 * half + 1))
    result: npt.NDArray[np.floating] = rank(windows, axis=(2, 3))
    return result


def _thickened(cropped: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """The cropped strokes, widened to `_PEN` pixels of the 20-pixel box where thinner (a fine
    pen on a large canvas would shrink to a faint trace no MNIST digit looks like).

    The width is twice the ink's area over its boundary (a stroke L long and w wide has
    area Lw and about 2L boundary pixels), measured at most `_WORK_SIDE` pixels wide.
    """
    image = Image.fromarray(np.ascontiguousarray(np.clip(cropped, 0, 255), dtype=np.uint8))
    longer = max(image.size)
    if longer > _WORK_SIDE:
        factor = _WORK_SIDE / longer
        image = image.resize(
            (max(1, round(image.width * factor)), max(1, round(image.height * factor))),
            Image.Resampling.LANCZOS,
        )
    work = np.asarray(image, dtype=np.float32)
    mask = work > 127
    area = int(mask.sum())
    padded = np.pad(mask, 1)
    inner = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    boundary = max(area - int(inner.sum()), 1)
    stroke = 2 * area / boundary
    pen = _PEN * max(work.shape) / BOX
    if area and stroke < 0.75 * pen:
        size = 2 * round((pen - stroke) / 2) + 1
        image = image.filter(ImageFilter.MaxFilter(size))
        work = np.asarray(image, dtype=np.float32)
    return work


def _centred_offsets(small: npt.NDArray[np.floating]) -> tuple[int, int]:
    """Where to paste `small` so its centre of mass sits at the frame's centre."""
    total = float(small.sum())
    height, width = small.shape
    if total > 0:
        ys, xs = np.indices(small.shape)
        cy, cx = float((ys * small).sum() / total), float((xs * small).sum() / total)
    else:
        cy, cx = (height - 1) / 2, (width - 1) / 2
    top = round(_CENTRE - cy)
    left = round(_CENTRE - cx)
    return min(max(top, 0), SIDE - height), min(max(left, 0), SIDE - width)


def check_plot_path(path: str | Path) -> Path:
    """The plot's file, checked before anything is computed or sent.

    Raises:
        QueryError: a folder, or not a format we write.
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise QueryError(f"--plot {path} is a folder: give a file name, e.g. {out / 'digit.png'}")
    if out.suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise QueryError(
            f"--plot {path}: give a file name ending in .png (or "
            f"{', '.join('.' + f for f in PLOT_FORMATS[1:])}), e.g. digit.png"
        )
    return out


def save_prediction_plot(
    path: str | Path,
    pixels: npt.ArrayLike,
    probabilities: Sequence[float],
    *,
    title: str,
    label: int | None = None,
) -> Path:
    """Save the digit (784 pixels in [0, 1]) beside a bar chart of its ten probabilities.

    Args:
        path: the PNG to write (folders are created); the path written is returned.
        title: what the image is, e.g. "MNIST test image #7"; `label` the true digit if known.

    Raises:
        QueryError: the path is not a PNG (or SVG, PDF, JPEG) file name, or cannot be written.
    """
    out = check_plot_path(path)
    import matplotlib  # matplotlib (0.6 s): --plot only

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    probs = np.asarray(probabilities, dtype=float)
    predicted = int(np.argmax(probs))
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(8, 3.4), gridspec_kw={"width_ratios": [1, 1.6]}
    )
    try:
        left.imshow(
            np.asarray(pixels, dtype=float).reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1
        )
        left.set_title(title if label is None else f"{title}\ntrue label: {label}", fontsize=10)
        left.axis("off")
        colours = ["tab:orange" if d == predicted else "tab:blue" for d in range(len(probs))]
        right.bar(range(len(probs)), probs, color=colours)
        right.set(xticks=range(len(probs)), ylim=(0, 1), xlabel="digit", ylabel="probability")
        right.set_title(f"prediction: {predicted} ({probs[predicted]:.0%})", fontsize=10)
        for digit, p in enumerate(probs):
            if p >= 0.01:
                right.text(digit, p + 0.02, f"{p:.2f}", ha="center", fontsize=8)
        figure.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, dpi=100, bbox_inches="tight")
    except OSError as exc:
        raise QueryError(
            f"cannot write the plot to {out} ({exc.strerror or exc}): choose another --plot path"
        ) from None
    finally:
        plt.close(figure)
    return out
