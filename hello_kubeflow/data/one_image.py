"""One MNIST test image for a query, read at its offset in the IDX files, verified once.

The first query verifies the test files (`mnist.load_test_images`) and records their
sizes and times in `verified-idx.json`; later ones read 784 bytes without numpy
while those still match (hashing 7.8 MB would be most of a query's time).
"""

from __future__ import annotations

import json
import logging
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_kubeflow.data.files import replacing
from hello_kubeflow.data.idx import (
    CHECKSUMS_FILE,
    TEST_IMAGES,
    TEST_LABELS,
    find_idx_file,
    mnist_folder,
)
from hello_kubeflow.errors import QueryError
from hello_kubeflow.settings import Settings, env_name

log = logging.getLogger(__name__)

VERIFIED_FILE = "verified-idx.json"
RANDOM_INDEX = -1  # `--index -1`: a random MNIST test image
IMAGE_BYTES = 28 * 28
_IMAGES_HEADER = 16  # magic + 3 dimensions, 4 bytes each
_LABELS_HEADER = 8  # magic + 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 64 * 1024

# Pixel value 0-255 -> the float32 x / 255 of `mnist.scale_pixels`, as a Python float.
SCALED: tuple[float, ...] = tuple(
    struct.unpack("<f", struct.pack("<f", value / 255))[0] for value in range(256)
)


@dataclass(frozen=True)
class OneImage:
    """One MNIST test image (784 pixels as `scale_pixels` makes them), its label and place."""

    pixels: list[float]
    label: int
    index: int
    total: int
    source: str


def check_index(index: int, total: int, source: str) -> int:
    """`index` if the test set holds it (else QueryError giving the range); `RANDOM_INDEX`: any."""
    if index == RANDOM_INDEX:
        return random.randrange(total)
    if not 0 <= index < total:
        raise QueryError(
            f"--index {index} is out of range: the test set ({source}) has {total:,} "
            f"images, 0 to {total - 1:,} (or {RANDOM_INDEX} for a random one)"
        )
    return index


def load_one_test_image(settings: Settings, index: int) -> OneImage:
    """The MNIST test image at `index` (`RANDOM_INDEX`: a random one) and its label.

    Raises:
        QueryError: the index is out of range.
        DataFileError, DownloadError: as for `mnist.load_test_images`, when the files
            are not verified yet (or changed since).
    """
    folder = mnist_folder(settings.mnist_dir, settings.cache_dir)
    files = _test_files(folder)
    key = _record_key(settings.mnist_dir is not None, files)
    stamps = _stamps(files, folder)
    record = _read_records(settings.cache_dir).get(key) if key else None
    if files and isinstance(record, dict) and stamps is not None and record.get("stamps") == stamps:
        images, labels = files
        total = int.from_bytes(_read_at(labels, 4, 4), "big")  # the labels header's count
        index = check_index(index, total, str(record["source"]))
        pixels = _read_at(images, _IMAGES_HEADER + index * IMAGE_BYTES, IMAGE_BYTES)
        label = _read_at(labels, _LABELS_HEADER + index, 1)
        if len(pixels) == IMAGE_BYTES and len(label) == 1 and label[0] <= 9:
            source = str(record["source"])
            return OneImage([SCALED[p] for p in pixels], label[0], index, total, source)
        # Short or corrupt although its size and time match the record: verify it again.
        stamps = None
    return _load_and_remember(settings, index, stamps)


def _load_and_remember(settings: Settings, index: int, stamps: list[list[int]] | None) -> OneImage:
    """Load (and so verify) the test set the usual way; remember the verified files."""
    from hello_kubeflow.data.mnist import load_test_images, scale_pixels  # numpy: first query only

    data = load_test_images(settings)
    total = len(data.y)
    index = check_index(index, total, data.source)
    pixels = [float(p) for p in scale_pixels(data.x[index])]
    if not data.is_subset:
        folder = mnist_folder(settings.mnist_dir, settings.cache_dir)
        files = _test_files(folder)  # a download may have just put them there
        after = _stamps(files, folder)
        key = _record_key(settings.mnist_dir is not None, files)
        if key and after is not None and (stamps is None or after == stamps):  # none changed
            _remember(settings.cache_dir, key, {"stamps": after, "source": data.source})
    return OneImage(pixels, int(data.y[index]), index, total, data.source)


def _test_files(folder: Path) -> tuple[Path, Path] | None:
    images, labels = find_idx_file(folder, TEST_IMAGES), find_idx_file(folder, TEST_LABELS)
    return (images, labels) if images and labels else None


def _record_key(from_mnist_dir: bool, files: tuple[Path, Path] | None) -> str | None:
    """Which files a record is about, and whether they were read as MNIST_DIR or the cache."""
    if files is None:
        return None
    kind = env_name("mnist_dir") if from_mnist_dir else "cache"
    return f"{kind}:{files[0].resolve()}|{files[1].resolve()}"


def _stamps(files: tuple[Path, Path] | None, folder: Path) -> list[list[int]] | None:
    """Size and modification time (ns) of both files and of a checksums file, if any."""
    if files is None:
        return None
    sums = folder / CHECKSUMS_FILE
    try:  # no checksums file (None): MNIST's own checksums
        stats = [*(path.stat() for path in files), sums.stat() if sums.is_file() else None]
    except OSError:
        return None
    return [[s.st_size, s.st_mtime_ns] if s else [-1, -1] for s in stats]


def _read_records(cache_dir: Path) -> dict[str, Any]:
    try:
        records = json.loads((cache_dir / VERIFIED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _remember(cache_dir: Path, key: str, record: dict[str, Any]) -> None:
    """Record verified files; a cache that cannot be written only costs a verification."""
    path = cache_dir / VERIFIED_FILE
    records = {**_read_records(cache_dir), key: record}
    try:
        with replacing(path) as part:
            part.write_text(json.dumps(records, indent=1), encoding="utf-8")
    except OSError as exc:
        log.debug("cannot record verified MNIST files in %s: %s", path, exc)


def _read_at(path: Path, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` of an IDX file's uncompressed content (fewer: it ends before)."""
    with path.open("rb") as file:
        if file.read(2) != _GZIP_MAGIC:
            file.seek(offset)
            return file.read(size)
        file.seek(0)
        try:
            return _gunzip_range(file, offset, size)
        except zlib.error:
            return b""


def _gunzip_range(file: Any, offset: int, size: int) -> bytes:
    """Decompress a gzip stream only as far as `offset + size`; return that range."""
    stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    while len(out) < offset + size:
        chunk = file.read(_CHUNK)
        if not chunk:
            break
        out += stream.decompress(chunk)
    return bytes(out[offset : offset + size])
