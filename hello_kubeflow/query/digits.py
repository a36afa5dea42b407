"""Digits as pictures: a PNG a person drew in, MNIST-like pixels out; and the query's plot.

A drawing becomes an MNIST-like image the way MNIST itself was made: grayscale,
light strokes on a dark background (inverted when drawn dark on light), cropped
to the strokes, scaled so the longer side is 20 pixels (aspect kept), placed in a
28x28 frame with its centre of mass in the middle, then scaled like the training
data (`mnist.scale_pixels`, x / 255).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hello_kubeflow.data.mnist import scale_pixels
from hello_kubeflow.errors import QueryError

SIDE = 28
BOX = 20  # MNIST fits each digit in a 20x20 box inside the 28x28 frame
_STROKE_FRACTION = 0.2  # pixels above 20% of the brightest count as strokes
_CENTRE = 14.0  # MNIST's centres of mass sit at pixel (14, 14) (measured on the test set)
PLOT_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


def load_digit_png(path: str | Path) -> npt.NDArray[np.float32]:
    """Read a drawn digit and make it look like an MNIST test image.

    Args:
        path: a PNG (or any image Pillow reads) of one digit, any size.

    Returns:
        784 float32 pixels in [0, 1], row by row, light digit on dark ground.

    Raises:
        QueryError: the file is missing, not an image, or blank.
    """
    from PIL import Image, UnidentifiedImageError

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
        QueryError: when the picture has no strokes (one flat colour).
    """
    from PIL import Image

    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    # Strokes become bright on dark, whichever way round they were drawn.
    ink = gray - background if background < 128 else background - gray
    ink = np.clip(ink, 0.0, None)
    peak = float(ink.max())
    if peak < 1.0:
        raise QueryError(f"{source} looks blank (one flat colour): draw a digit on it")
    ink = ink * (255.0 / peak)
    rows = np.flatnonzero((ink > _STROKE_FRACTION * 255).any(axis=1))
    cols = np.flatnonzero((ink > _STROKE_FRACTION * 255).any(axis=0))
    cropped = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
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
        QueryError: `path` is a folder, or does not end in a format we write.
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
    """Save the digit beside a bar chart of its ten class probabilities.

    Args:
        path: the PNG to write (folders are created).
        pixels: the 784 pixels sent, in [0, 1].
        probabilities: the ten probabilities the model answered.
        title: what the image is, e.g. "MNIST test image #7".
        label: the true digit, when known.

    Returns:
        The path written.

    Raises:
        QueryError: the path is not a PNG (or SVG, PDF, JPEG) file name, or cannot
            be written.
    """
    out = check_plot_path(path)
    import matplotlib

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
        right.set_xticks(range(len(probs)))
        right.set_ylim(0, 1)
        right.set_xlabel("digit")
        right.set_ylabel("probability")
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
