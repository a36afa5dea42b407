"""A drawn digit becomes an MNIST-like image; the query's plot is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from drawn_digits import STYLES, draw_digit, on_grey_paper
from PIL import Image

from hello_kubeflow.data.mnist import load_mnist, scale_pixels
from hello_kubeflow.errors import QueryError
from hello_kubeflow.query.digits import load_digit_png, save_prediction_plot
from hello_kubeflow.settings import Settings


@pytest.fixture(scope="module")
def mnist_seven(mnist_dir: Path) -> np.ndarray:
    """MNIST test image 0 (a 7) as 28x28 uint8, light on dark."""
    data = load_mnist(Settings(mnist_dir=mnist_dir))
    return data.x_test[0].reshape(28, 28)


def _drawn(seven: np.ndarray, *, dark_on_light: bool, margin: int = 40) -> np.ndarray:
    """The 7 as a person might draw it: 4x larger, off-centre, with a wide margin."""
    big = np.kron(seven, np.ones((4, 4), dtype=np.uint8))
    canvas = np.zeros((big.shape[0] + 2 * margin, big.shape[1] + 3 * margin), dtype=np.uint8)
    canvas[margin : margin + big.shape[0], 2 * margin : 2 * margin + big.shape[1]] = big
    return 255 - canvas if dark_on_light else canvas


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-on-light", "light-on-dark"])
def test_drawn_digit_comes_out_like_the_mnist_original(
    mnist_seven: np.ndarray, tmp_path: Path, dark_on_light: bool
) -> None:
    path = tmp_path / "seven.png"
    Image.fromarray(_drawn(mnist_seven, dark_on_light=dark_on_light)).save(path)
    pixels = load_digit_png(path)
    assert pixels.shape == (784,)
    assert pixels.dtype == np.float32
    assert pixels.min() >= 0
    assert pixels.max() <= 1
    assert pixels.reshape(28, 28)[0].max() == 0  # light strokes on a dark frame
    assert _correlation(pixels, scale_pixels(mnist_seven)) > 0.8


def test_transparent_drawing_is_read_as_strokes_on_paper(
    mnist_seven: np.ndarray, tmp_path: Path
) -> None:
    strokes = _drawn(mnist_seven, dark_on_light=False)
    rgba = np.zeros((*strokes.shape, 4), dtype=np.uint8)
    rgba[..., 3] = strokes  # black ink whose opacity is the stroke
    path = tmp_path / "seven-rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert _correlation(load_digit_png(path), scale_pixels(mnist_seven)) > 0.8


def test_digit_is_fitted_in_a_20_pixel_box_and_centred(tmp_path: Path) -> None:
    canvas = np.full((300, 200), 255, dtype=np.uint8)
    canvas[20:280, 10:40] = 0  # a tall "1" far to the left
    path = tmp_path / "one.png"
    Image.fromarray(canvas).save(path)
    image = load_digit_png(path).reshape(28, 28)
    rows = np.flatnonzero(image.max(axis=1) > 0.2)
    cols = np.flatnonzero(image.max(axis=0) > 0.2)
    assert rows[-1] - rows[0] + 1 in (19, 20, 21)
    ys, xs = np.indices(image.shape)
    assert abs((ys * image).sum() / image.sum() - 14) < 1
    assert abs((xs * image).sum() / image.sum() - 14) < 1
    assert cols[-1] - cols[0] + 1 < 6


def test_blank_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(path)
    with pytest.raises(QueryError, match="blank"):
        load_digit_png(path)


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "digit.png"
    path.write_text("not a png")
    with pytest.raises(QueryError, match="not an image"):
        load_digit_png(path)


def test_missing_image_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="no such file"):
        load_digit_png(tmp_path / "nope.png")


def test_plot_is_written_as_a_png(mnist_seven: np.ndarray, tmp_path: Path) -> None:
    probabilities = [0.01] * 10
    probabilities[7] = 0.91
    out = save_prediction_plot(
        tmp_path / "plots" / "seven.png",
        scale_pixels(mnist_seven),
        probabilities,
        title="MNIST test image #0",
        label=7,
    )
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size[0] > image.size[1] > 200


@pytest.mark.parametrize("name", ["digit.xyz", "digit"])
def test_plot_name_without_an_image_format_is_refused(name: str, tmp_path: Path) -> None:
    """No silent `digit.png` written when the user asked for `digit`, no matplotlib traceback."""
    with pytest.raises(QueryError, match=r"ending in \.png"):
        save_prediction_plot(tmp_path / name, np.zeros(784), [0.1] * 10, title="t")
    assert list(tmp_path.iterdir()) == []


def test_plot_onto_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="is a folder"):
        save_prediction_plot(tmp_path, np.zeros(784), [0.1] * 10, title="t")
    assert not tmp_path.with_suffix(".png").exists()


def test_plot_that_cannot_be_written_is_a_query_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(QueryError, match="cannot write the plot"):
        save_prediction_plot(blocker / "digit.png", np.zeros(784), [0.1] * 10, title="t")


def test_a_digit_on_grey_paper_in_uneven_light_comes_out_as_on_white_paper(
    tmp_path: Path,
) -> None:
    """The paper is flattened first: its dark corner is not taken for strokes."""
    white = draw_digit(2, tmp_path / "white.png", **STYLES["thick"])
    grey = on_grey_paper(white, tmp_path / "grey.png")

    # Against one colour for the whole paper, the dark corner became ink: correlation 0.24.
    assert _correlation(load_digit_png(grey), load_digit_png(white)) > 0.95
