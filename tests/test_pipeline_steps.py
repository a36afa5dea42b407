"""The dataset artifact the load-data step writes and the later steps read back; the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving_support import make_tiny_model

from hello_kubeflow.errors import DataFileError
from hello_kubeflow.pipeline.steps import (
    CONFUSION_PNG,
    evaluate_step,
    load_data_step,
    read_dataset,
    read_test_images,
    write_dataset,
)


def _arrays(info: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 784), dtype=np.uint8),
        "y_train": np.arange(6, dtype=np.int64),
        "x_test": rng.integers(0, 256, (4, 784), dtype=np.uint8),
        "y_test": np.arange(4, dtype=np.int64),
    }
    if info:
        arrays["info"] = np.array(json.dumps({"source": "MNIST_DIR /data", "is_subset": False}))
    return arrays


def test_a_written_dataset_reads_back_whole_and_as_its_test_set(tmp_path: Path) -> None:
    path = tmp_path / "dataset.npz"
    written = _arrays()
    write_dataset(path, written)

    data = read_dataset(str(path))
    test = read_test_images(str(path))

    np.testing.assert_array_equal(data.x_train, written["x_train"])
    np.testing.assert_array_equal(data.y_test, written["y_test"])
    np.testing.assert_array_equal(test.x, written["x_test"])
    assert (
        (data.source, data.is_subset) == (test.source, test.is_subset) == ("MNIST_DIR /data", False)
    )


@pytest.mark.parametrize("read", [read_dataset, read_test_images])
@pytest.mark.parametrize("problem", ["missing", "not a zip", "no info"])
def test_anything_but_our_dataset_is_one_clear_error(
    tmp_path: Path, read: object, problem: str
) -> None:
    path = tmp_path / "dataset.npz"
    if problem == "not a zip":
        path.write_bytes(b"not a dataset")
    elif problem == "no info":
        write_dataset(path, _arrays(info=False))

    with pytest.raises(DataFileError, match="run the pipeline again from the start") as caught:
        read(str(path))  # type: ignore[operator]
    assert str(path) in str(caught.value)


def test_the_confusion_matrix_says_which_data_it_was_scored_on(
    mnist_dir: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "dataset.npz"
    info = load_data_step(str(dataset), mnist_dir=str(mnist_dir), test_limit=100)
    model = make_tiny_model(mnist_dir, tmp_path / "model")

    evaluate_step(str(dataset), str(model), str(tmp_path / "report"))

    with Image.open(tmp_path / "report" / CONFUSION_PNG) as png:
        title = png.info["Title"]
    assert title.startswith("Confusion matrix: accuracy ")
    assert f"on 100 test images from MNIST_DIR {mnist_dir}" in title
    assert f"(sha256 {info['test_digest'][:8]})" in title
