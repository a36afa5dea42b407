"""How good a model is on the test set: accuracy, per-digit figures, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hello_kubeflow.errors import DataError
from hello_kubeflow.model.artifact import CLASS_NAMES, N_CLASSES

DIGITS = tuple(range(N_CLASSES))


class ProbabilityModel(Protocol):
    """Anything with `predict_proba`: a scikit-learn forest or a `LoadedModel`."""

    def predict_proba(self, x: Any) -> Any:
        """(n, 10) class probabilities for (n, 784) pixels."""
        ...


@dataclass(frozen=True)
class Evaluation:
    """A model's figures on a labelled test set.

    Attributes:
        accuracy: share of images whose predicted digit is right.
        precision: per digit 0-9, share of the images predicted as it that are it.
        recall: per digit 0-9, share of the images of it predicted as it.
        support: per digit 0-9, how many test images show it.
        confusion_matrix: 10x10 counts, row = true digit, column = predicted digit.
    """

    accuracy: float
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    support: tuple[int, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]

    @property
    def test_size(self) -> int:
        """How many test images were scored."""
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


def evaluate(model: ProbabilityModel, x_test: npt.ArrayLike, y_test: npt.ArrayLike) -> Evaluation:
    """Score a model on labelled images.

    Args:
        model: a fitted forest or a `LoadedModel` (anything with `predict_proba`).
        x_test: float32 pixels in [0, 1], shaped (n, 784).
        y_test: the true digits.

    Returns:
        Accuracy, per-digit precision/recall/support and the confusion matrix.
    """
    truth = np.asarray(y_test, dtype=np.int64)
    predicted = np.asarray(model.predict_proba(np.asarray(x_test, np.float32))).argmax(axis=1)
    return evaluation_of(truth, predicted)


def evaluation_of(truth: npt.ArrayLike, predicted: npt.ArrayLike) -> Evaluation:
    """The figures for true and predicted digits (0-9), without a model.

    Raises:
        DataError: the two differ in length or hold something other than digits 0-9.
    """
    true = np.asarray(truth, dtype=np.int64)
    pred = np.asarray(predicted, dtype=np.int64)
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


def save_confusion_png(evaluation: Evaluation, path: Path | str) -> Path:
    """Draw the confusion matrix as a PNG a person can read.

    Right answers (the diagonal) are shaded green by recall; mistakes are
    shaded red by their count relative to the largest mistake, so the digits
    the model confuses stand out even at 97% accuracy. Every cell shows its count.

    Args:
        evaluation: what `evaluate` returned.
        path: where the PNG goes (parent directories are created).

    Returns:
        The PNG's path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.array(evaluation.confusion_matrix, dtype=np.int64)
    diagonal = np.eye(N_CLASSES, dtype=bool)
    support = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    worst = max(int(matrix[~diagonal].max(initial=0)), 1)

    figure = Figure(figsize=(7.5, 6.8), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(np.ma.masked_where(~diagonal, matrix / support), cmap="Greens", vmin=0, vmax=1.2)
    axes.imshow(
        np.ma.masked_where(diagonal | (matrix == 0), matrix / worst), cmap="Reds", vmin=0, vmax=1.3
    )
    for (row, column), count in np.ndenumerate(matrix):
        shade = matrix[row, column] / (support[row, 0] if row == column else worst)
        axes.text(
            column,
            row,
            f"{count:,}" if count else "·",
            ha="center",
            va="center",
            fontsize=8.5 if count < 1000 else 7.5,
            color="white" if shade > 0.6 else "black",
        )
    axes.set_xticks(DIGITS)
    axes.set_yticks(DIGITS)
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    axes.xaxis.set_label_position("top")
    axes.xaxis.tick_top()
    axes.set_title(
        f"Confusion matrix: accuracy {evaluation.accuracy:.2%} on "
        f"{evaluation.test_size:,} test images\n"
        "green: right answers (shade = recall); red: mistakes (shade = count)",
        fontsize=10,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out
