"""Tests for hello_kubeflow.data.download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import logging
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from mirror_server import MirrorServer

from hello_kubeflow.data.download import STALE_PART_SECONDS, fetch_from_mirrors
from hello_kubeflow.data.idx import CHECKSUMS_FILE, decode_idx, read_checksums
from hello_kubeflow.errors import DownloadError
from hello_kubeflow.retry import Backoff

FAST = Backoff(initial=0.01, maximum=0.02, jitter=0.01, attempts=4, deadline=10.0)
NAME = "t10k-labels-idx1-ubyte"
FILE = f"{NAME}.gz"
UNRESOLVABLE = "http://mnist-mirror.invalid/"  # .invalid never resolves (RFC 6761)


# The mirror serves the small fixture's real digits: checked against its own IDX-SHA256SUMS.
SUMS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _fixture_checksums(mnist_dir: Path) -> None:
    SUMS.update(read_checksums(mnist_dir / CHECKSUMS_FILE))


@pytest.fixture
def first_label(mnist_dir: Path) -> int:
    """The first label of the served test-labels file."""
    return int(gzip.decompress((mnist_dir / FILE).read_bytes())[8])


def _verify(part: Path) -> tuple[np.ndarray, str]:
    array, gzipped = decode_idx(
        part.read_bytes(), NAME, origin="the download", fix="", checksums=SUMS
    )
    return array, FILE if gzipped else NAME


def _fetch(mirrors: list[str], directory: Path) -> tuple[np.ndarray, Path, str]:
    return fetch_from_mirrors(FILE, mirrors, directory, _verify, timeout=5.0, retry=FAST)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_download_lands_verified_under_its_final_name(
    mnist_mirror: MirrorServer, first_label: int, tmp_path: Path
) -> None:
    labels, path, mirror = _fetch([mnist_mirror.url("ok")], tmp_path)
    assert labels[0] == first_label
    assert mirror == mnist_mirror.url("ok")
    assert sorted(os.listdir(tmp_path)) == [FILE]
    assert path.read_bytes() == (mnist_mirror.root / FILE).read_bytes()


def test_503_is_retried_until_the_mirror_answers(
    mnist_mirror: MirrorServer, first_label: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        labels, _, _ = _fetch([mnist_mirror.url("fail3")], tmp_path)
    assert labels[0] == first_label
    assert mnist_mirror.count("fail3") == 4
    retries = [r.getMessage() for r in caplog.records if "next try in" in r.getMessage()]
    assert len(retries) == 3
    assert retries[0].startswith(
        f"downloading {mnist_mirror.url('fail3')}{FILE} failed (HTTP 503), attempt 1; next try in "
    )
    assert all("\n" not in line for line in retries)


def test_503_that_never_ends_moves_on_to_the_next_mirror(
    mnist_mirror: MirrorServer, first_label: int, tmp_path: Path
) -> None:
    labels, _, mirror = _fetch([mnist_mirror.url("fail99"), mnist_mirror.url("ok")], tmp_path)
    assert mirror == mnist_mirror.url("ok")
    assert mnist_mirror.count("fail99") == FAST.attempts
    assert labels[0] == first_label


def test_404_is_not_retried(mnist_mirror: MirrorServer, tmp_path: Path) -> None:
    _fetch([mnist_mirror.url("missing"), mnist_mirror.url("ok")], tmp_path)
    assert mnist_mirror.count("missing") == 1


def test_connection_dropped_mid_body_is_retried(
    mnist_mirror: MirrorServer, first_label: int, tmp_path: Path
) -> None:
    labels, _, _ = _fetch([mnist_mirror.url("drop1")], tmp_path)
    assert labels[0] == first_label
    assert mnist_mirror.count("drop1") == 2


def test_connection_always_dropped_leaves_nothing_behind(
    mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match="dropped in the middle of the download") as caught:
        _fetch([mnist_mirror.url("drop99")], tmp_path)
    assert not caught.value.offline
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("mode", ["badsum", "garbled", "html"])
def test_corrupt_bytes_are_rejected_and_the_next_mirror_used(
    mnist_mirror: MirrorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    with caplog.at_level(logging.WARNING):
        _, path, mirror = _fetch([mnist_mirror.url(mode), mnist_mirror.url("ok")], tmp_path)
    assert mirror == mnist_mirror.url("ok")
    assert mnist_mirror.count(mode) == 1  # bad content is not retried on the same mirror
    assert sorted(os.listdir(tmp_path)) == [FILE]
    assert path.read_bytes() == (mnist_mirror.root / FILE).read_bytes()
    assert f"{mnist_mirror.url(mode)}{FILE} failed: the download" in caplog.text


def test_only_corrupt_mirrors_leave_no_file_that_looks_valid(
    mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as caught:
        _fetch([mnist_mirror.url("badsum"), mnist_mirror.url("garbled")], tmp_path)
    message = str(caught.value)
    assert f"{mnist_mirror.url('badsum')}{FILE}: the download fails its checksum" in message
    assert f"{mnist_mirror.url('garbled')}{FILE}: the download is a corrupt gzip" in message
    assert "MNIST_DIR" in message
    assert not caught.value.offline
    assert os.listdir(tmp_path) == []


def test_unreachable_mirrors_are_reported_as_offline(tmp_path: Path) -> None:
    closed = _closed_port_url()
    with pytest.raises(DownloadError, match="Connection refused") as caught:
        _fetch([closed, closed], tmp_path)
    assert caught.value.offline
    assert len(caught.value.failures) == 2
    assert "after 4 attempts" in caught.value.failures[0]
    assert os.listdir(tmp_path) == []


def test_a_host_name_that_does_not_resolve_is_tried_once_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No DNS will not heal in seconds: one attempt, no retry lines, and it counts as offline."""
    with caplog.at_level(logging.DEBUG), pytest.raises(DownloadError) as caught:
        _fetch([UNRESOLVABLE], tmp_path)
    assert caught.value.offline
    assert caught.value.failures == (
        f"{UNRESOLVABLE}{FILE}: cannot connect: the host name does not resolve",
    )
    assert "next try" not in caplog.text


def test_a_mirror_found_unreachable_is_not_tried_again_in_the_same_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = _closed_port_url()
    with pytest.raises(DownloadError):
        _fetch([closed], tmp_path)
    caplog.clear()
    with caplog.at_level(logging.DEBUG), pytest.raises(DownloadError) as caught:
        fetch_from_mirrors(
            "train-labels-idx1-ubyte.gz", [closed], tmp_path, _verify, timeout=5.0, retry=FAST
        )
    assert caught.value.offline
    [failure] = caught.value.failures
    assert failure.endswith("(earlier in this run; not tried again)")
    assert "Connection refused" in failure
    assert caplog.text == ""  # not tried: no request, no retry, nothing to say


def test_one_unreachable_and_one_corrupt_mirror_is_not_offline(
    mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as caught:
        _fetch([_closed_port_url(), mnist_mirror.url("badsum")], tmp_path)
    assert not caught.value.offline


def test_stale_temporary_files_of_a_killed_download_are_removed(
    mnist_mirror: MirrorServer, tmp_path: Path
) -> None:
    stale = tmp_path / f".{FILE}.abc123.part"
    fresh = tmp_path / f".{FILE}.def456.part"  # maybe another download in progress
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - STALE_PART_SECONDS - 60
    os.utime(stale, (old, old))
    _fetch([mnist_mirror.url("ok")], tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([fresh.name, FILE])
