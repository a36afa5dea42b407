"""How good a model is on the test set: accuracy, per-digit figures, confusion matrix."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hello_kubeflow.errors import DataError
from hello_kubeflow.model.artifact import CLASS_NAMES, N_CLASSES

DIGITS = tuple(range(N_CLASSES))
_DATA_CHARS = 96  # of the data's name, what fits under the confusion matrix's title


class ProbabilityModel(Protocol):
    """Anything with `predict_proba`: a scikit-learn forest or a `LoadedModel`."""

    def predict_proba(self, x: Any) -> Any:
        """(n, 10) class probabilities for (n, 784) pixels."""
        ...


@dataclass(frozen=True)
class Evaluation:
    """A model's figures on a labelled test set; per-digit tuples in digit order.

    Attributes:
        precision: per digit, share of the images predicted as it that are it.
        recall: per digit, share of the images of it predicted as it.
        confusion_matrix: 10x10 counts, row = true digit, column = predicted digit.
    """

    accuracy: float
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    support: tuple[int, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]

    @property
    def test_size(self) -> int:
        return sum(self.support)

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-ready values (lists in digit order)."""
        return {
            "accuracy": self.accuracy,
            "test_size": self.test_size,
            "classes": list(DIGITS),
            "class_names": list(CLASS_NAMES),
            "precision": list(self.precision),
            "recall": list(self.recall),
            "support": list(self.support),
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
        }


def top_confusions(evaluation: Evaluation, count: int = 3) -> list[tuple[int, int, int]]:
    """The mistakes a model makes most: (true digit, predicted digit, how many), worst first.

    Ties go to the lower true digit, then the lower predicted digit; pairs never
    confused are left out, so a perfect model has none.
    """
    matrix = np.array(evaluation.confusion_matrix, dtype=np.int64)
    pairs = [
        (int(matrix[t, p]), t, p)
        for t in range(N_CLASSES)
        for p in range(N_CLASSES)
        if t != p and matrix[t, p] > 0
    ]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    return [(t, p, n) for n, t, p in pairs[:count]]


def one_image_latency_ms(
    model: ProbabilityModel, image: npt.ArrayLike, repeats: int = 300
) -> float:
    """Median milliseconds of `model.predict_proba` for one image's 784 pixels, after a warm-up."""
    row = np.asarray(image, dtype=np.float32).reshape(1, -1)
    for _ in range(10):
        model.predict_proba(row)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_proba(row)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def evaluate(model: ProbabilityModel, x_test: npt.ArrayLike, y_test: npt.ArrayLike) -> Evaluation:
    """Score a model (anything with `predict_proba`) on pixels in [0, 1] (n, 784) and digits.

    Raises:
        DataError: labels and predictions differ in length, or labels are not digits 0-9.
    """
    true = np.asarray(y_test, dtype=np.int64)
    proba = np.asarray(model.predict_proba(np.asarray(x_test, np.float32)))
    pred = proba.argmax(axis=1).astype(np.int64)
    if true.shape != pred.shape or not np.isin(np.concatenate([true, pred]), DIGITS).all():
        raise DataError(
            f"cannot score {true.shape} labels against {pred.shape} predictions: both must "
            "be digits 0-9, one per test image"
        )
    matrix = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    hits = np.diag(matrix)
    predicted_as = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    # A digit never predicted (or absent) gets 0, as scikit-learn's zero_division=0.
    precision = np.divide(hits, predicted_as, out=np.zeros(N_CLASSES), where=predicted_as > 0)
    recall = np.divide(hits, support, out=np.zeros(N_CLASSES), where=support > 0)
    return Evaluation(
        accuracy=float(hits.sum() / max(len(true), 1)),
        precision=tuple(round(float(v), 6) for v in precision),
        recall=tuple(round(float(v), 6) for v in recall),
        support=tuple(int(v) for v in support),
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in matrix),
    )


def save_confusion_png(evaluation: Evaluation, path: Path | str, *, scored_on: str = "") -> Path:
    """Draw the confusion matrix as a PNG at `path` (folders created) and return the path.

    Right answers shaded green by recall, mistakes red by count against the largest,
    so confusions stand out even at 97%. Pillow, not matplotlib: that took ~1 s of
    every evaluate step (docs/benchmarks.md). `scored_on` (the data) is drawn under
    the title, shortened if long, and kept whole in the PNG's `Title` text.
    """
    # PIL: the evaluate step's picture only, not the model server
    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    matrix = np.array(evaluation.confusion_matrix, dtype=np.int64)
    diagonal = np.eye(N_CLASSES, dtype=bool)
    support = np.maximum(matrix.sum(axis=1), 1)
    worst = max(int(matrix[~diagonal].max(initial=0)), 1)

    cell, left, top, margin = 64, 92, 138, 28
    side = cell * N_CLASSES
    image = Image.new("RGB", (left + side + margin, top + side + margin), "white")
    draw = ImageDraw.Draw(image)
    title = ImageFont.load_default(size=17)
    label = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)

    heading = (
        f"Confusion matrix: accuracy {evaluation.accuracy:.2%} on "
        f"{evaluation.test_size:,} test images"
    )
    draw.text((left + side / 2, 10), heading, font=title, fill="black", anchor="mt")
    if scored_on:
        shown = scored_on if len(scored_on) <= _DATA_CHARS else scored_on[: _DATA_CHARS - 1] + "…"
        draw.text((left + side / 2, 34), f"from {shown}", font=small, fill="black", anchor="mt")
    draw.text(
        (left + side / 2, 56),
        "green: right answers (shade = recall); red: mistakes (shade = count)",
        font=small,
        fill=(70, 70, 70),
        anchor="mt",
    )
    draw.text((left + side / 2, top - 44), "predicted digit", font=label, fill="black", anchor="mb")
    for (row, column), count in np.ndenumerate(matrix):
        if row == column:
            shade = count / support[row]
            colour = _shade(_GREENS, shade / 1.2)
        else:
            shade = count / worst
            colour = _shade(_REDS, shade / 1.3) if count else (255, 255, 255)
        x, y = left + column * cell, top + row * cell
        draw.rectangle((x, y, x + cell, y + cell), fill=colour)
        draw.text(
            (x + cell / 2, y + cell / 2),
            f"{count:,}" if count else "·",
            font=small,
            fill="white" if shade > 0.6 else "black",
            anchor="mm",
        )
    draw.rectangle((left, top, left + side, top + side), outline="black")
    for digit in DIGITS:
        middle = digit * cell + cell / 2
        draw.text((left + middle, top - 8), str(digit), font=label, fill="black", anchor="mb")
        draw.text((left - 10, top + middle), str(digit), font=label, fill="black", anchor="rm")
    # The rows' axis label, written sideways: drawn on its own strip, then turned.
    strip = Image.new("RGB", (side, 24), "white")
    ImageDraw.Draw(strip).text((side / 2, 12), "true digit", font=label, fill="black", anchor="mm")
    image.paste(strip.rotate(90, expand=True), (left - 66, top))

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = PngInfo()
    text.add_text("Title", f"{heading} from {scored_on}" if scored_on else heading)
    image.save(out, format="PNG", pnginfo=text)
    return out


def _ramp(*colours: str) -> npt.NDArray[np.float64]:
    """Hex colour stops (`"f7fcf5"`) as one row of red, green, blue per stop."""
    return np.array([[int(c[i : i + 2], 16) for i in (0, 2, 4)] for c in colours], dtype=float)


# ColorBrewer's 9-class sequential Greens and Reds (the stops of matplotlib's maps).
_GREENS = _ramp(
    "f7fcf5", "e5f5e0", "c7e9c0", "a1d99b", "74c476", "41ab5d", "238b45", "006d2c", "00441b"
)
_REDS = _ramp(
    "fff5f0", "fee0d2", "fcbba1", "fc9272", "fb6a4a", "ef3b2c", "cb181d", "a50f15", "67000d"
)


def _shade(stops: npt.NDArray[np.float64], t: float) -> tuple[int, int, int]:
    """The colour a share `t` (0-1, clipped) of the way along a `_ramp`'s stops."""
    where = np.linspace(0.0, 1.0, len(stops))
    t = min(max(float(t), 0.0), 1.0)
    red, green, blue = (round(float(np.interp(t, where, stops[:, i]))) for i in range(3))
    return red, green, blue
