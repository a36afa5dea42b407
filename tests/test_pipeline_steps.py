"""The dataset artifact the load-data step writes and the later steps read back; the report."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving_support import make_tiny_model

from hello_kubeflow.errors import DataFileError
from hello_kubeflow.pipeline.steps import (
    CONFUSION_PNG,
    KEPT_DATASET,
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
    info = load_data_step(
        str(dataset), mnist_dir=str(mnist_dir), test_limit=100, cache_dir=str(tmp_path / "cache")
    )
    model = make_tiny_model(mnist_dir, tmp_path / "model")

    evaluate_step(str(dataset), str(model), str(tmp_path / "report"))

    with Image.open(tmp_path / "report" / CONFUSION_PNG) as png:
        title = png.info["Title"]
    assert title.startswith("Confusion matrix: accuracy ")
    assert f"on 100 test images from MNIST_DIR {mnist_dir}" in title
    assert f"(sha256 {info['test_digest'][:8]})" in title


KEPT = "kept from an earlier run"


@pytest.fixture
def writable_mnist(mnist_dir: Path, tmp_path: Path) -> Path:
    """A copy of the small MNIST_DIR that a test may change."""
    return Path(shutil.copytree(mnist_dir, tmp_path / "mnist"))


def _load(folder: Path, tmp_path: Path, name: str, **limits: int) -> dict[str, object]:
    dataset = tmp_path / name / "dataset.npz"
    return load_data_step(
        str(dataset), mnist_dir=str(folder), cache_dir=str(tmp_path / "cache"), **limits
    )


def test_a_second_run_on_unchanged_files_copies_the_kept_dataset(
    writable_mnist: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hello_kubeflow.pipeline.steps")
    first = _load(writable_mnist, tmp_path, "first", test_limit=100)
    assert KEPT not in caplog.text
    second = _load(writable_mnist, tmp_path, "second", test_limit=100)

    assert KEPT in caplog.text
    assert second == first
    before, after = (
        read_dataset(str(tmp_path / "first" / "dataset.npz")),
        read_dataset(str(tmp_path / "second" / "dataset.npz")),
    )
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
    assert len(after.y_test) == 100


def test_copying_the_kept_dataset_imports_no_numpy_and_no_download_stack(
    writable_mnist: Path, tmp_path: Path
) -> None:
    """What keeps a local run's load-data step short: a fresh process copies, never decodes."""
    first = _load(writable_mnist, tmp_path, "first", test_limit=100)
    script = (
        "import json, sys\n"
        "from hello_kubeflow.pipeline.steps import load_data_step\n"
        "info = load_data_step(sys.argv[1], mnist_dir=sys.argv[2], cache_dir=sys.argv[3], "
        "test_limit=100)\n"
        "heavy = sorted({'numpy', 'requests', 'tenacity'} & set(sys.modules))\n"
        "print(json.dumps([info, heavy]))\n"
    )
    second = tmp_path / "second" / "dataset.npz"
    done = subprocess.run(
        [sys.executable, "-c", script, str(second), str(writable_mnist), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [first, []]
    assert second.read_bytes() == (tmp_path / "first" / "dataset.npz").read_bytes()


def test_other_limits_are_not_served_the_kept_dataset(
    writable_mnist: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hello_kubeflow.pipeline.steps")
    _load(writable_mnist, tmp_path, "first", test_limit=100)
    info = _load(writable_mnist, tmp_path, "second", test_limit=50)

    assert KEPT not in caplog.text
    assert (
        info["test_size"] == 50 == len(read_test_images(str(tmp_path / "second" / "dataset.npz")).y)
    )


def test_a_byte_changed_in_an_mnist_file_after_a_run_is_refused(
    writable_mnist: Path, tmp_path: Path
) -> None:
    """The next run does not trust the kept dataset: it verifies the changed file, and stops."""
    _load(writable_mnist, tmp_path, "first")
    labels = writable_mnist / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8] = (raw[8] + 1) % 10  # the first label, another digit: same size, wrong checksum
    labels.write_bytes(gzip.compress(bytes(raw)))

    with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte\.gz fails its checksum"):
        _load(writable_mnist, tmp_path, "second")


def test_a_changed_kept_dataset_is_not_used(
    writable_mnist: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hello_kubeflow.pipeline.steps")
    _load(writable_mnist, tmp_path, "first")
    kept = tmp_path / "cache" / KEPT_DATASET
    stat = kept.stat()
    other = _arrays()
    other["info"] = np.array(json.dumps({"source": "somewhere else", "is_subset": False}))
    write_dataset(kept, other)
    os.utime(kept, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    _load(writable_mnist, tmp_path, "second")

    assert KEPT not in caplog.text
    data = read_dataset(str(tmp_path / "second" / "dataset.npz"))
    assert len(data.y_train) == 4000
    assert data.source.startswith("MNIST_DIR")


@pytest.mark.parametrize("damage", ["not json", "a list", "no info"])
def test_a_damaged_record_of_the_kept_dataset_only_costs_the_read(
    writable_mnist: Path, tmp_path: Path, damage: str
) -> None:
    _load(writable_mnist, tmp_path, "first", test_limit=10)
    record = tmp_path / "cache" / "dataset.json"
    kept = json.loads(record.read_text())
    del kept["info"]
    record.write_text({"not json": "{", "a list": "[]", "no info": json.dumps(kept)}[damage])

    info = _load(writable_mnist, tmp_path, "second", test_limit=10)

    second = read_test_images(str(tmp_path / "second" / "dataset.npz"))
    assert info["test_size"] == 10 == len(second.y)
