"""Tests for hello_kubeflow.data.idx: reading MNIST IDX files and refusing bad ones."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hello_kubeflow.data.idx import (
    CHECKSUMS_FILE,
    FIX_LOCAL_FILE,
    images_and_labels,
    read_checksums,
    read_idx,
)
from hello_kubeflow.errors import DataFileError

TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _raw(mnist_dir: Path, name: str) -> bytes:
    return gzip.decompress((mnist_dir / f"{name}.gz").read_bytes())


def _sums(mnist_dir: Path) -> dict[str, str]:
    """The small fixture's own checksums (its files are real digits, not MNIST's files)."""
    return read_checksums(mnist_dir / CHECKSUMS_FILE)


def _idx(magic: int, dims: tuple[int, ...], body: bytes) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + body


def test_train_labels_match_the_readme_counts_and_first_label(full_mnist_dir: Path) -> None:
    labels = read_idx(full_mnist_dir / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,)
    assert labels[0] == 5
    assert np.bincount(labels).tolist() == TRAIN_LABEL_COUNTS


def test_test_labels_match_the_readme_counts_and_first_label(full_mnist_dir: Path) -> None:
    labels = read_idx(full_mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert labels[0] == 7
    assert np.bincount(labels).tolist() == TEST_LABEL_COUNTS


def test_test_images_are_uint8_28x28_pixels_0_to_255(mnist_dir: Path) -> None:
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", checksums=_sums(mnist_dir))
    assert images.shape == (1000, 28, 28)
    assert images.dtype == np.uint8
    assert images.max() == 255
    assert images.flags.writeable


def test_uncompressed_file_reads_the_same_as_gzip(mnist_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(_raw(mnist_dir, "t10k-labels-idx1-ubyte"))
    sums = _sums(mnist_dir)
    assert np.array_equal(
        read_idx(raw, checksums=sums),
        read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", checksums=sums),
    )


def test_gzip_is_told_by_content_not_by_name(mnist_dir: Path, tmp_path: Path) -> None:
    """A gzip file without .gz and a plain file with .gz are both read."""
    gz_content = tmp_path / "gz" / "t10k-labels-idx1-ubyte"
    plain_content = tmp_path / "plain" / "t10k-labels-idx1-ubyte.gz"
    gz_content.parent.mkdir()
    plain_content.parent.mkdir()
    shutil.copyfile(mnist_dir / "t10k-labels-idx1-ubyte.gz", gz_content)
    plain_content.write_bytes(_raw(mnist_dir, "t10k-labels-idx1-ubyte"))
    sums = _sums(mnist_dir)
    first = _raw(mnist_dir, "t10k-labels-idx1-ubyte")[8]
    assert read_idx(gz_content, checksums=sums)[0] == read_idx(plain_content, checksums=sums)[0]
    assert read_idx(plain_content, checksums=sums)[0] == first


def test_file_with_another_name_is_checked_but_not_checksummed(tmp_path: Path) -> None:
    path = tmp_path / "my-digits-idx3-ubyte"
    path.write_bytes(_idx(0x803, (2, 28, 28), bytes(range(256)) * 6 + bytes(1568 - 1536)))
    images = read_idx(path)
    assert images.shape == (2, 28, 28)
    assert images[0, 0, 1] == 1


# ---- bad files: each a DataFileError naming the file, the problem and the fix

Corruption = Callable[[Path, Path], bytes]


def _truncated_gzip(mnist_dir: Path, tmp: Path) -> bytes:
    data = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    return data[: len(data) // 2]


def _garbled_gzip(mnist_dir: Path, tmp: Path) -> bytes:
    data = bytearray((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[100:140] = bytes(40)
    return bytes(data)


def _gzip_with_trailing_junk(mnist_dir: Path, tmp: Path) -> bytes:
    return (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes() + b"junk"


def _truncated_idx(mnist_dir: Path, tmp: Path) -> bytes:
    return _raw(mnist_dir, "t10k-labels-idx1-ubyte")[:-10]


def _idx_with_extra_bytes(mnist_dir: Path, tmp: Path) -> bytes:
    return _raw(mnist_dir, "t10k-labels-idx1-ubyte") + b"\x00" * 3


def _one_label_changed(mnist_dir: Path, tmp: Path) -> bytes:
    raw = bytearray(_raw(mnist_dir, "t10k-labels-idx1-ubyte"))
    raw[8] = 3  # the first label, 7, becomes 3: same size, still a valid IDX file
    return gzip.compress(bytes(raw))


def _html_page(mnist_dir: Path, tmp: Path) -> bytes:
    return b"<html><body>503 Service Unavailable</body></html>"


def _images_under_a_labels_name(mnist_dir: Path, tmp: Path) -> bytes:
    return _idx(0x803, (1, 28, 28), bytes(784))


def _empty(mnist_dir: Path, tmp: Path) -> bytes:
    return b""


def _truncated_header(mnist_dir: Path, tmp: Path) -> bytes:
    return _idx(0x801, (), b"\x00\x00")


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (_truncated_gzip, "truncated gzip"),
        (_garbled_gzip, "corrupt gzip"),
        (_gzip_with_trailing_junk, "unexpected bytes after its gzip data"),
        (_truncated_idx, "is truncated: its header promises 1,008 bytes"),
        (_idx_with_extra_bytes, "has 3 bytes more than its header describes"),
        (_one_label_changed, "fails its checksum"),
        (_html_page, "looks like an HTML page"),
        (_images_under_a_labels_name, "holds images (IDX magic 0x00000803), but its name says"),
        (_empty, "too short to be an IDX file"),
        (_truncated_header, "truncated inside its IDX header"),
    ],
)
def test_bad_file_is_a_clear_error_naming_file_and_fix(
    mnist_dir: Path, tmp_path: Path, corrupt: Corruption, problem: str
) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(corrupt(mnist_dir, tmp_path))
    with pytest.raises(DataFileError) as caught:
        read_idx(path, checksums=_sums(mnist_dir))
    message = str(caught.value)
    assert message.startswith(str(path))
    assert problem in message
    assert message.endswith(FIX_LOCAL_FILE)


def test_the_fixture_reads_cleanly_with_its_own_checksums(mnist_dir: Path) -> None:
    """The control for the corruptions above: unchanged, the same file passes."""
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", checksums=_sums(mnist_dir))
    assert np.bincount(labels).tolist() == [100] * 10


def test_a_checksums_file_missing_a_name_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / CHECKSUMS_FILE
    path.write_text(f"{'a' * 64}  t10k-labels-idx1-ubyte\n")
    with pytest.raises(DataFileError, match="lists no checksum for train-images-idx3-ubyte"):
        read_checksums(path)


def test_images_that_are_not_28x28_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "digits-idx3-ubyte"
    path.write_bytes(_idx(0x803, (1, 27, 27), bytes(27 * 27)))
    with pytest.raises(DataFileError, match="holds 27x27 images, expected 28x28"):
        read_idx(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte\.gz does not exist"):
        read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz")


def test_a_folder_in_place_of_the_file_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "t10k-labels-idx1-ubyte"
    folder.mkdir()
    with pytest.raises(DataFileError, match="cannot be read"):
        read_idx(folder)


def test_caller_chooses_the_fix_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"nope")
    with pytest.raises(DataFileError, match=r"0x6e6f7065.*\. Unset MNIST_DIR\.$"):
        read_idx(path, fix="Unset MNIST_DIR.")


# ---- pairing images with labels


def test_images_and_labels_become_flat_uint8_and_int64() -> None:
    x, y = images_and_labels(
        np.zeros((3, 28, 28), np.uint8), np.array([1, 2, 3], np.uint8), "imgs", "lbls"
    )
    assert x.shape == (3, 784) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == [1, 2, 3]


def test_image_and_label_counts_must_match() -> None:
    with pytest.raises(DataFileError, match="imgs holds 3 images but lbls holds 2 labels"):
        images_and_labels(np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8), "imgs", "lbls")


def test_labels_must_be_digits() -> None:
    with pytest.raises(DataFileError, match="lbls has a label 12"):
        images_and_labels(np.zeros((1, 28, 28), np.uint8), np.array([12], np.uint8), "x", "lbls")


def test_swapped_images_and_labels_files_are_refused() -> None:
    with pytest.raises(DataFileError, match="check which file is which"):
        images_and_labels(np.zeros(3, np.uint8), np.zeros((3, 28, 28), np.uint8), "a", "b")


def test_labels_are_digits_9_is_the_last_one_accepted() -> None:
    images = np.zeros((2, 28, 28), dtype=np.uint8)

    _, labels = images_and_labels(images, np.array([0, 9], dtype=np.uint8), "images", "labels")
    assert labels.tolist() == [0, 9]
    with pytest.raises(DataFileError, match="labels has a label 10, not a digit 0-9"):
        images_and_labels(images, np.array([0, 10], dtype=np.uint8), "images", "labels")
