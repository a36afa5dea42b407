"""The IDX file format of MNIST: decode (gzip or not), check the header, verify SHA-256."""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hello_kubeflow.errors import DataFileError

if TYPE_CHECKING:  # numpy is imported where arrays are made: a query's one image needs none
    import numpy as np
    import numpy.typing as npt

SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
"""SHA-256 of each MNIST file's *uncompressed* bytes (mirrors compress differently)."""

LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IMAGE_SIDE = 28
GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 64 * 1024 * 1024  # the largest MNIST file is 47,040,016 bytes
FIX_LOCAL_FILE = "Delete it and run again to re-download it, or point MNIST_DIR at a good copy."
CHECKSUMS_FILE = "IDX-SHA256SUMS"  # not SHA256SUMS: that usually lists the .gz files as stored
_CHECKSUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *]?(\S+)$")
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def mnist_folder(mnist_dir: Path | None, cache_dir: Path) -> Path:
    """Where the four MNIST files are read from: MNIST_DIR, else the download cache's folder."""
    return mnist_dir or cache_dir / "mnist"


def find_idx_file(directory: Path, name: str) -> Path | None:
    """The file for `name` in `directory` (`name` or `name.gz`), if any."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(
    path: Path, *, fix: str = FIX_LOCAL_FILE, checksums: Mapping[str, str] = SHA256
) -> np.ndarray:
    """Read an MNIST IDX file (gzip or not): uint8 labels (n,) or images (n, 28, 28).

    Checks the magic number, the dimensions and the size against the header; a
    file with a canonical MNIST name must hold what the name promises and match
    its SHA-256 in `checksums` (MNIST's own, or a folder's `IDX-SHA256SUMS`).

    Raises:
        DataFileError: missing, unreadable, truncated, corrupt or the wrong file;
            the message names the file and says `fix`.
    """
    try:
        size = path.stat().st_size
        if size > MAX_IDX_BYTES:
            raise _Problem(f"is {size:,} bytes, far larger than any MNIST file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise _error(str(path), "does not exist", fix) from None
    except OSError as exc:
        raise _error(str(path), f"cannot be read ({exc.strerror or exc})", fix) from None
    except _Problem as problem:
        raise _error(str(path), str(problem), fix) from None
    array, _ = decode_idx(
        data, path.name.removesuffix(".gz"), origin=str(path), fix=fix, checksums=checksums
    )
    return array


def decode_idx(
    data: bytes,
    name: str,
    *,
    origin: str,
    fix: str,
    checksums: Mapping[str, str] = SHA256,
) -> tuple[np.ndarray, bool]:
    """Decode an IDX file's bytes, checked as `read_idx` does; the array, and whether gzipped.

    `name` is the canonical MNIST name (one not in `checksums` skips the checksum);
    `origin` names the file in messages, `fix` says what to do.

    Raises:
        DataFileError: truncated, corrupt or the wrong file.
    """
    try:
        gzipped = data.startswith(GZIP_MAGIC)
        raw = _gunzip(data) if gzipped else data
        array = _parse(raw, name)
        expected = checksums.get(name)
        if expected is not None:
            actual = hashlib.sha256(raw).hexdigest()
            if actual != expected.lower():
                what = (
                    "the original MNIST" if checksums is SHA256 else f"the {CHECKSUMS_FILE} entry"
                )
                raise _Problem(
                    f"fails its checksum: SHA-256 of the uncompressed content is {actual}, "
                    f"expected {expected} (the file is corrupt or not {what})"
                )
    except _Problem as problem:
        raise _error(origin, str(problem), fix) from None
    return array, gzipped


def read_checksums(path: Path) -> dict[str, str]:
    """Each MNIST file's SHA-256 in an `IDX-SHA256SUMS` (`sha256sum`'s format; `.gz` dropped).

    Raises:
        DataFileError: unreadable, a malformed line, or a file name missing.
    """
    fix = (
        f"Write it with `sha256sum {' '.join(SHA256)} > {CHECKSUMS_FILE}` in that folder "
        "(of the uncompressed files), or remove it to verify against MNIST's own checksums."
    )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(str(path), f"cannot be read ({exc})", fix) from None
    sums: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = _CHECKSUM_LINE.match(line.strip())
        if match is None:
            raise _error(str(path), f"line {number} is not `<sha256>  <file name>`", fix)
        sums[Path(match.group(2)).name.removesuffix(".gz")] = match.group(1).lower()
    missing = [name for name in SHA256 if name not in sums]
    if missing:
        raise _error(str(path), f"lists no checksum for {', '.join(missing)}", fix)
    return {name: sums[name] for name in SHA256}


def images_and_labels(
    images: np.ndarray, labels: np.ndarray, images_origin: str, labels_origin: str
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Pair images (n, 28, 28) and labels (files named by their origins) as uint8 (n, 784), int64.

    Raises:
        DataFileError: the files are not images and labels of the same length.
    """
    import numpy as np  # numpy: not on one image's query path

    if images.ndim != 3 or labels.ndim != 1:
        raise DataFileError(
            f"{images_origin} and {labels_origin} are not an images file and a labels file "
            "(check which file is which)."
        )
    if len(images) != len(labels):
        raise DataFileError(
            f"{images_origin} holds {len(images):,} images but {labels_origin} holds "
            f"{len(labels):,} labels: they are not a pair. Use the images and labels files "
            "of the same MNIST set (train or t10k)."
        )
    if len(labels) and labels.max() > 9:
        raise _error(labels_origin, f"has a label {labels.max()}, not a digit 0-9", FIX_LOCAL_FILE)
    x = np.ascontiguousarray(images.reshape(len(images), IMAGE_SIDE * IMAGE_SIDE), dtype=np.uint8)
    return x, labels.astype(np.int64)


def idx_sha256(array: np.ndarray) -> str:
    """SHA-256 of `array` written as an uncompressed IDX file: for MNIST, its file's `SHA256`."""
    import numpy as np  # numpy: not on a one-image query's path

    header = (0x0800 + array.ndim).to_bytes(4, "big")  # unsigned bytes, ndim dimensions
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    digest = hashlib.sha256(header)
    digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return digest.hexdigest()


class _Problem(Exception):
    """What is wrong with a file, before we know how to name it."""


def _error(origin: str, problem: str, fix: str) -> DataFileError:
    return DataFileError(f"{origin} {problem}." + (f" {fix}" if fix else ""))


def _gunzip(data: bytes) -> bytes:
    """Decompress every gzip member, refusing truncated, corrupt or huge streams."""
    out = bytearray()
    rest = data
    while rest:
        if not rest.startswith(GZIP_MAGIC):
            raise _Problem("has unexpected bytes after its gzip data (corrupt gzip)")
        stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += stream.decompress(rest, MAX_IDX_BYTES + 1 - len(out))
        except zlib.error as exc:
            raise _Problem(f"is a corrupt gzip file ({exc})") from None
        if len(out) > MAX_IDX_BYTES or stream.unconsumed_tail:
            raise _Problem("uncompresses to far more bytes than any MNIST file")
        if not stream.eof:
            raise _Problem("is a truncated gzip file (it ends before the gzip stream does)")
        rest = stream.unused_data
    return bytes(out)


def _parse(raw: bytes, name: str) -> np.ndarray:
    import numpy as np  # numpy: not on one image's query path

    if len(raw) < 4:
        raise _Problem(f"is too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (LABELS_MAGIC, IMAGES_MAGIC):
        looks_like = " (it looks like an HTML page)" if raw.lstrip()[:1] == b"<" else ""
        raise _Problem(
            f"is not an MNIST IDX file{looks_like}: it starts with 0x{magic:08x}, expected "
            f"0x{IMAGES_MAGIC:08x} (images) or 0x{LABELS_MAGIC:08x} (labels)"
        )
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    named = "images" if "-images-" in name else "labels"  # for MNIST's own file names
    if name in SHA256 and kind != named:
        raise _Problem(f"holds {kind} (IDX magic 0x{magic:08x}), but its name says {named}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _Problem("is truncated inside its IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if kind == "images" and dims[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise _Problem(f"holds {dims[1]}x{dims[2]} images, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    expected = header + math.prod(dims)
    if len(raw) < expected:
        raise _Problem(
            f"is truncated: its header promises {expected:,} bytes of IDX data, "
            f"it holds {len(raw):,}"
        )
    if len(raw) > expected:
        raise _Problem(
            f"has {len(raw) - expected:,} bytes more than its header describes "
            f"({expected:,} bytes expected)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()
