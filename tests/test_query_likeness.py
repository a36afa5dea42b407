"""Whether a query's input looks like an MNIST digit, held against MNIST's own digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hello_kubeflow.data.mnist import load_mnist, scale_pixels
from hello_kubeflow.query.likeness import mnist_likeness
from hello_kubeflow.settings import Settings


def test_mnist_test_digits_look_like_mnist_digits(mnist_dir: Path) -> None:
    digits = scale_pixels(load_mnist(Settings(mnist_dir=mnist_dir)).x_test)
    unlike = [i for i, pixels in enumerate(digits) if not mnist_likeness(pixels, 0.9).like_mnist]
    assert unlike == []
    assert mnist_likeness(digits[0], 0.9).note == "looks like an MNIST digit"


def _frame(rows: slice, cols: slice, value: float = 1.0) -> np.ndarray:
    frame = np.zeros((28, 28), dtype=np.float32)
    frame[rows, cols] = value
    return frame.ravel()


@pytest.mark.parametrize(
    ("pixels", "reasons"),
    [
        (_frame(slice(4, 24), slice(4, 24)), ["too much ink (51%", "one blob 11 pixels thick"]),
        (_frame(slice(14, 15), slice(14, 16)), ["too little ink (0.3%"]),
        (
            np.random.default_rng(0).uniform(0.2, 0.8, 784).astype(np.float32),
            ["too much ink", "of the lit pixels are grey, like noise"],
        ),
    ],
    ids=["blob", "speck", "grey-noise"],
)
def test_an_input_unlike_a_digit_gets_a_note_saying_how(
    pixels: np.ndarray, reasons: list[str]
) -> None:
    likeness = mnist_likeness(pixels, 0.99)
    assert not likeness.like_mnist
    assert likeness.note.startswith("unlike an MNIST digit: ")
    assert all(reason in likeness.note for reason in reasons), likeness.note
    assert "its answer may mean nothing" in likeness.note


def test_a_digit_the_model_is_unsure_of_gets_a_note(mnist_dir: Path) -> None:
    digit = scale_pixels(load_mnist(Settings(mnist_dir=mnist_dir)).x_test[0])
    likeness = mnist_likeness(digit, 0.33)
    assert not likeness.like_mnist
    assert "the model is unsure (its top answer has 33%)" in likeness.note
