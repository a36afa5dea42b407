"""One MNIST test image read at its offset, and the record of verified files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_endpoint import GOOD_ROW, FakeEndpoint, seldon_answer

from hello_kubeflow.data.mnist import load_test_images, scale_pixels
from hello_kubeflow.data.one_image import SCALED, VERIFIED_FILE, load_one_test_image
from hello_kubeflow.errors import DataFileError, QueryError
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"


@pytest.fixture
def test_set(mnist_dir: Path, tmp_path: Path) -> Path:
    """A writable MNIST_DIR holding the small set's test files (gzip) and their checksums."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in (f"{TEST_IMAGES}.gz", f"{TEST_LABELS}.gz", "IDX-SHA256SUMS"):
        shutil.copy(mnist_dir / name, folder / name)
    return folder


def _settings(folder: Path, tmp_path: Path) -> Settings:
    return Settings(mnist_dir=folder, cache_dir=tmp_path / "cache")


def _gunzip_in_place(folder: Path) -> None:
    for name in (TEST_IMAGES, TEST_LABELS):
        packed = folder / f"{name}.gz"
        (folder / name).write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()


def test_scaled_table_is_the_float32_scaling_of_training() -> None:
    every_value = np.arange(256, dtype=np.uint8)
    assert list(SCALED) == scale_pixels(every_value).tolist()


@pytest.mark.parametrize("packed", [True, False], ids=["gzip", "uncompressed"])
def test_one_image_matches_the_loaded_test_set_before_and_after_it_is_recorded(
    test_set: Path, tmp_path: Path, packed: bool
) -> None:
    if not packed:
        _gunzip_in_place(test_set)
    settings = _settings(test_set, tmp_path)
    data = load_test_images(settings)
    last = len(data.y) - 1
    for _ in range(2):  # the first verifies and records, the second reads at the offset
        for index in (0, 417, last):
            one = load_one_test_image(settings, index)
            assert one.pixels == scale_pixels(data.x[index]).tolist()
            assert (one.label, one.index, one.total) == (int(data.y[index]), index, len(data.y))
            assert one.source == data.source
    assert (settings.cache_dir / VERIFIED_FILE).is_file()


def test_a_file_changed_after_it_was_recorded_is_verified_again(
    test_set: Path, tmp_path: Path
) -> None:
    settings = _settings(test_set, tmp_path)
    load_one_test_image(settings, 0)  # verified and recorded
    labels = test_set / f"{TEST_LABELS}.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8] = (raw[8] + 1) % 10  # image 0's label, another digit: same size, wrong checksum
    labels.write_bytes(gzip.compress(bytes(raw)))
    stat = labels.stat()
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DataFileError, match="fails its checksum"):
        load_one_test_image(settings, 0)


def test_a_file_corrupted_behind_the_records_back_is_still_refused(
    test_set: Path, tmp_path: Path
) -> None:
    """Same size, same time, broken gzip: the read notices, and verifying names the file."""
    settings = _settings(test_set, tmp_path)
    load_one_test_image(settings, 0)
    images = test_set / f"{TEST_IMAGES}.gz"
    stat = images.stat()
    packed = bytearray(images.read_bytes())
    middle = len(packed) // 2
    packed[middle : middle + 64] = bytes(64)
    images.write_bytes(bytes(packed))
    os.utime(images, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(DataFileError, match=TEST_IMAGES):
        load_one_test_image(settings, 999)


def test_a_changed_checksums_file_is_verified_again(test_set: Path, tmp_path: Path) -> None:
    settings = _settings(test_set, tmp_path)
    load_one_test_image(settings, 0)
    sums = test_set / "IDX-SHA256SUMS"
    lines = [
        "0" * 64 + line[64:] if line.endswith(TEST_IMAGES) else line
        for line in sums.read_text().splitlines()
    ]
    sums.write_text("\n".join(lines) + "\n")  # the same size, another checksum
    stat = sums.stat()
    os.utime(sums, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DataFileError, match="fails its checksum"):
        load_one_test_image(settings, 0)


def test_out_of_range_index_names_the_range_once_recorded(test_set: Path, tmp_path: Path) -> None:
    settings = _settings(test_set, tmp_path)
    load_one_test_image(settings, 0)
    with pytest.raises(QueryError, match=r"--index 1000 is out of range.*0 to 999"):
        load_one_test_image(settings, 1000)
    picked = {load_one_test_image(settings, -1).index for _ in range(20)}
    assert all(0 <= index < 1000 for index in picked)
    assert len(picked) > 1


def test_an_unwritable_cache_only_costs_the_verification(test_set: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    settings = Settings(mnist_dir=test_set, cache_dir=blocked)
    first, second = load_one_test_image(settings, 3), load_one_test_image(settings, 3)
    assert first == second


def test_a_recorded_query_imports_no_numpy(test_set: Path, tmp_path: Path) -> None:
    """What makes `inv query` quick: one image needs no numpy."""
    settings = _settings(test_set, tmp_path)
    load_one_test_image(settings, 5)  # the first query verifies (with numpy) and records
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hello_kubeflow.query.client import query_digit\n"
        "from hello_kubeflow.settings import Settings\n"
        "settings = Settings(\n"
        "    mnist_dir=Path(sys.argv[1]), cache_dir=Path(sys.argv[2]), query_url=sys.argv[3]\n"
        ")\n"
        "result = query_digit(settings, index=5)\n"
        "heavy = sorted({'numpy'} & set(sys.modules))\n"
        "print(result.prediction, result.label, heavy)\n"
    )
    with FakeEndpoint((200, seldon_answer([GOOD_ROW]))) as endpoint:
        done = subprocess.run(
            [sys.executable, "-c", script, str(test_set), str(settings.cache_dir), endpoint.url],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        sent = json.loads(endpoint.received[0][2])["data"]["ndarray"]
    label = int(load_test_images(settings).y[5])
    assert done.stdout.split() == ["7", str(label), "[]"]
    assert sent == [scale_pixels(load_test_images(settings).x[5]).tolist()]
