"""Tests for hello_kubeflow.data.idx: reading MNIST IDX files and refusing bad ones."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hello_kubeflow.data import idx
from hello_kubeflow.data.idx import (
    CHECKSUMS_FILE,
    FIX_LOCAL_FILE,
    SHA256,
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
        (_truncated_gzip, "is a truncated gzip file (it ends before the gzip stream does)"),
        (_garbled_gzip, "is a corrupt gzip file (Error -3 while decompressing data"),
        (_gzip_with_trailing_junk, "has unexpected bytes after its gzip data (corrupt gzip)."),
        (
            _truncated_idx,
            "is truncated: its header promises 1,008 bytes of IDX data, it holds 998.",
        ),
        (
            _idx_with_extra_bytes,
            "has 3 bytes more than its header describes (1,008 bytes expected).",
        ),
        (_one_label_changed, "fails its checksum"),
        (
            _html_page,
            "is not an MNIST IDX file (it looks like an HTML page): it starts with 0x3c68746d, "
            "expected 0x00000803 (images) or 0x00000801 (labels).",
        ),
        (
            _images_under_a_labels_name,
            "holds images (IDX magic 0x00000803), but its name says labels.",
        ),
        (_empty, "is too short to be an IDX file (0 bytes)."),
        (_truncated_header, "is truncated inside its IDX header."),
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
    assert message.startswith(f"{path} {problem}")
    assert message.endswith(f". {FIX_LOCAL_FILE}")


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


def test_a_labels_file_that_is_not_a_list_is_refused() -> None:
    """Only one of the two wrong (labels with two dimensions) is enough to refuse the pair."""
    with pytest.raises(DataFileError) as caught:
        images_and_labels(np.zeros((3, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), "a", "b")
    assert str(caught.value) == (
        "a and b are not an images file and a labels file (check which file is which)."
    )


def test_a_label_out_of_range_says_how_to_fix_the_file() -> None:
    with pytest.raises(DataFileError) as caught:
        images_and_labels(np.zeros((1, 28, 28), np.uint8), np.array([12], np.uint8), "x", "lbls")
    assert str(caught.value) == f"lbls has a label 12, not a digit 0-9. {FIX_LOCAL_FILE}"


def test_unpaired_files_say_which_set_to_use() -> None:
    with pytest.raises(DataFileError) as caught:
        images_and_labels(np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8), "imgs", "lbls")
    assert str(caught.value) == (
        "imgs holds 3 images but lbls holds 2 labels: they are not a pair. "
        "Use the images and labels files of the same MNIST set (train or t10k)."
    )


# ---- whole messages and limits


def test_a_file_that_is_not_mnist_says_so_against_mnist_own_checksum(mnist_dir: Path) -> None:
    """The small fixture holds real digits but not MNIST's file: MNIST's own SHA-256 refuses it."""
    path = mnist_dir / "t10k-labels-idx1-ubyte.gz"
    actual = hashlib.sha256(_raw(mnist_dir, "t10k-labels-idx1-ubyte")).hexdigest()
    with pytest.raises(DataFileError) as caught:
        read_idx(path)
    assert str(caught.value) == (
        f"{path} fails its checksum: SHA-256 of the uncompressed content is {actual}, "
        f"expected {SHA256['t10k-labels-idx1-ubyte']} (the file is corrupt or not the "
        f"original MNIST). {FIX_LOCAL_FILE}"
    )


def test_missing_and_unreadable_files_name_the_file_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(DataFileError) as caught:
        read_idx(missing)
    assert str(caught.value) == f"{missing} does not exist. {FIX_LOCAL_FILE}"
    tmp_path.joinpath("folder").mkdir()
    with pytest.raises(DataFileError) as caught:
        read_idx(tmp_path / "folder", fix="Unset MNIST_DIR.")
    assert (
        str(caught.value)
        == f"{tmp_path / 'folder'} cannot be read (Is a directory). Unset MNIST_DIR."
    )


def test_with_no_fix_the_message_ends_with_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataFileError) as caught:
        read_idx(tmp_path / "gone", fix="")
    assert str(caught.value) == f"{tmp_path / 'gone'} does not exist."


def test_a_garbage_file_is_not_called_an_html_page(tmp_path: Path) -> None:
    path = tmp_path / "digits"
    path.write_bytes(b"nope")
    with pytest.raises(DataFileError) as caught:
        read_idx(path, fix="")
    assert str(caught.value) == (
        f"{path} is not an MNIST IDX file: it starts with 0x6e6f7065, "
        "expected 0x00000803 (images) or 0x00000801 (labels)."
    )


def test_an_html_page_after_blank_lines_is_still_called_one(tmp_path: Path) -> None:
    path = tmp_path / "digits"
    path.write_bytes(b"\n  <!DOCTYPE html><html></html>")
    with pytest.raises(DataFileError, match=r"\(it looks like an HTML page\)"):
        read_idx(path)


def test_an_empty_labels_file_is_read_as_no_labels(tmp_path: Path) -> None:
    path = tmp_path / "empty-labels"
    path.write_bytes(_idx(0x801, (0,), b""))
    assert read_idx(path).shape == (0,)


@pytest.mark.parametrize(
    ("dims", "problem"),
    [
        ((1 << 24,), "is truncated: its header promises 16,777,224 bytes of IDX data, it holds 8"),
        ((1, (1 << 24) + 28, 28), "holds 16777244x28 images, expected 28x28"),
        ((1, 27, 26), "holds 27x26 images, expected 28x28"),
    ],
    ids=["labels-count", "image-rows", "27x26"],
)
def test_header_dimensions_are_read_whole(
    tmp_path: Path, dims: tuple[int, ...], problem: str
) -> None:
    """Every dimension is four big-endian bytes; a large one is not read short."""
    path = tmp_path / "digits"
    path.write_bytes(_idx(0x801 if len(dims) == 1 else 0x803, dims, b""))
    with pytest.raises(DataFileError) as caught:
        read_idx(path, fix="")
    assert str(caught.value) == f"{path} {problem}."


def test_a_gzip_file_of_several_members_reads_whole(tmp_path: Path) -> None:
    """`cat a.gz b.gz` is one valid gzip file: every member's bytes count."""
    path = tmp_path / "digits"
    data = _idx(0x801, (4,), bytes([1, 2, 3, 4]))
    path.write_bytes(gzip.compress(data[:6]) + gzip.compress(data[6:]))
    assert read_idx(path).tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("gzipped", [False, True], ids=["raw", "gzip"])
def test_the_size_limit_accepts_its_last_byte_and_refuses_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gzipped: bool
) -> None:
    """A file of exactly the limit reads; one byte more is refused, saying so (limit: 108)."""
    monkeypatch.setattr(idx, "MAX_IDX_BYTES", 108)
    path = tmp_path / "digits"
    for count in (100, 101):
        data = _idx(0x801, (count,), bytes(count))
        path.write_bytes(gzip.compress(data) if gzipped else data)
        if count == 100:
            assert read_idx(path).shape == (100,)
            continue
        with pytest.raises(DataFileError) as caught:
            read_idx(path, fix="Use a smaller file.")
        problem = (
            "uncompresses to far more bytes than any MNIST file"
            if gzipped
            else "is 109 bytes, far larger than any MNIST file"
        )
        assert str(caught.value) == f"{path} {problem}. Use a smaller file."


def test_checksums_file_errors_give_the_line_and_the_command_that_writes_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / CHECKSUMS_FILE
    fix = (
        f"Write it with `sha256sum {' '.join(SHA256)} > {CHECKSUMS_FILE}` in that folder "
        "(of the uncompressed files), or remove it to verify against MNIST's own checksums."
    )
    path.write_text(f"\n{'a' * 64}  t10k-labels-idx1-ubyte\nnot a sum\n")
    with pytest.raises(DataFileError) as caught:
        read_checksums(path)
    assert str(caught.value) == f"{path} line 3 is not `<sha256>  <file name>`. {fix}"

    path.write_text(f"\n{'a' * 64}  t10k-labels-idx1-ubyte\n")
    with pytest.raises(DataFileError) as caught:
        read_checksums(path)
    missing = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte"
    assert str(caught.value) == f"{path} lists no checksum for {missing}. {fix}"

    path.write_bytes(b"\xff\xfe")
    with pytest.raises(DataFileError) as caught:
        read_checksums(path)
    assert str(caught.value).startswith(f"{path} cannot be read (")
    assert str(caught.value).endswith(f"). {fix}")


def test_checksums_after_a_blank_line_are_read_and_lowercased(tmp_path: Path) -> None:
    path = tmp_path / CHECKSUMS_FILE
    path.write_text("\n".join(["", *(f"{'A' * 64} *{name}.gz" for name in SHA256), ""]))
    assert read_checksums(path) == dict.fromkeys(SHA256, "a" * 64)
