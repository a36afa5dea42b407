"""Request bodies over real HTTP: charsets, gzip and its inflated size, the parsing helper."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from serving_support import call, free_port, make_tiny_model, mnist_test_pixels

from hello_kubeflow.model.train import load_model
from hello_kubeflow.query.answers import seldon_payload, v2_payload
from hello_kubeflow.serving.bodies import INLINE_BODY_BYTES, parse_elsewhere, stop_helper
from hello_kubeflow.serving.server import RunningServer, running_server
from hello_kubeflow.settings import Settings

LIMIT = 200_000  # a small body limit, so that bodies past it stay small
SELDON = "/api/v1.0/predictions"
V2 = "/v2/models/mnist-classifier/infer"
START_SECONDS = 60.0


@pytest.fixture(scope="module")
def model_dir(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(mnist_dir, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[RunningServer]:
    with running_server(Settings(serve_port=0, max_body_bytes=LIMIT), model_dir) as running:
        yield running


@pytest.fixture(scope="module")
def pixels(mnist_dir: Path) -> np.ndarray:
    return mnist_test_pixels(mnist_dir)[0]


def _body(path: str, pixels: np.ndarray) -> bytes:
    return seldon_payload(pixels) if path == SELDON else v2_payload(pixels)


def _rows(path: str, answer: Any) -> np.ndarray:
    if path == SELDON:
        return np.asarray(answer["data"]["ndarray"])
    return np.asarray(answer["outputs"][0]["data"]).reshape(-1, 10)


def _post(
    server: RunningServer, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any, http.client.HTTPResponse]:
    """POST on a fresh connection; the status, the decoded JSON answer and the response."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read()), response
    finally:
        connection.close()


@pytest.mark.parametrize("path", [SELDON, V2])
@pytest.mark.parametrize(
    ("charset", "encoding"),
    [
        ("", "utf-8-sig"),  # a UTF-8 byte order mark, as Windows tools write
        ("; charset=utf-16", "utf-16"),  # Python's utf-16: a byte order mark, then LE
        ("; charset=UTF-16LE", "utf-16-le"),  # no byte order mark: the charset says
        ('; charset="utf-16be"', "utf-16-be"),
        ("", "utf-16"),  # no charset: the byte order mark says, as for json.loads
        ("; charset=utf-32", "utf-32"),
    ],
)
def test_utf8_with_a_bom_and_utf16_are_answered_as_the_seldon_wrapper_answers_them(
    server: RunningServer,
    model_dir: Path,
    pixels: np.ndarray,
    path: str,
    charset: str,
    encoding: str,
) -> None:
    images = pixels[:2]
    body = _body(path, images).decode().encode(encoding)
    status, answer, _ = _post(server, path, body, {"Content-Type": "application/json" + charset})
    assert status == 200, answer
    expected = load_model(model_dir).predict_proba(images)
    np.testing.assert_allclose(_rows(path, answer), expected, atol=1e-6)


def test_a_charset_python_cannot_read_is_415_naming_it(
    server: RunningServer, pixels: np.ndarray
) -> None:
    headers = {"Content-Type": "application/json; charset=klingon"}
    status, answer, _ = _post(server, SELDON, seldon_payload(pixels[:1]), headers)
    assert status == 415
    assert "klingon" in answer["status"]["info"] and "UTF-8" in answer["status"]["info"]


def test_text_that_is_not_in_its_declared_charset_is_400_saying_so(server: RunningServer) -> None:
    headers = {"Content-Type": "application/json; charset=utf-16"}
    status, answer, _ = _post(server, SELDON, b'{"data": 1}', headers)  # an odd byte count
    assert status == 400
    assert "not valid utf-16 text" in answer["status"]["info"]


@pytest.mark.parametrize("path", [SELDON, V2])
@pytest.mark.parametrize("chunked", [False, True])
def test_a_gzip_body_is_inflated(
    server: RunningServer, model_dir: Path, pixels: np.ndarray, path: str, chunked: bool
) -> None:
    images = pixels[:3]
    compressed = gzip.compress(_body(path, images))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    if chunked:  # no Content-Length: the inflated size is counted as it arrives
        pieces = [compressed[i : i + 1000] for i in range(0, len(compressed), 1000)]
        connection.request("POST", path, body=iter(pieces), headers=headers, encode_chunked=True)
    else:
        connection.request("POST", path, body=compressed, headers=headers)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 200, answer
    expected = load_model(model_dir).predict_proba(images)
    np.testing.assert_allclose(_rows(path, answer), expected, atol=1e-6)


def test_concatenated_gzip_members_are_one_body(server: RunningServer, pixels: np.ndarray) -> None:
    body = seldon_payload(pixels[:1])
    compressed = gzip.compress(body[:100]) + gzip.compress(body[100:])
    headers = {"Content-Type": "application/json", "Content-Encoding": "x-gzip"}
    status, answer, _ = _post(server, SELDON, compressed, headers)
    assert status == 200, answer
    assert len(answer["data"]["ndarray"]) == 1


def test_a_small_gzip_inflating_past_the_limit_is_413_without_being_inflated_whole(
    server: RunningServer,
) -> None:
    inflated = 50_000_000  # 250 times the limit, from about 50 KB on the wire
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(packer.compress(b" " * 1_000_000) for _ in range(inflated // 1_000_000))
    bomb += packer.flush()
    assert len(bomb) < LIMIT
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    tracemalloc.start()  # the server runs in this process: its allocations are traced too
    try:
        status, answer, response = _post(server, SELDON, bomb, headers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 413
    assert "inflated request body" in answer["status"]["info"]
    assert response.getheader("connection") == "close"
    assert peak < 20 * LIMIT, f"{peak:,} bytes allocated while refusing the body"
    assert call(server.url + "/health/ping") == (200, "pong")


def test_a_gzip_header_on_a_request_without_a_body_is_no_error(server: RunningServer) -> None:
    message = json.dumps({"data": {"ndarray": [[0] * 784]}}, separators=(",", ":"))
    url = f"{server.url}/predict?json={quote(message)}"
    status, answer = call(url, headers={"Content-Encoding": "gzip"})
    assert status == 200, answer


@pytest.mark.parametrize("coding", ["br", "deflate", "compress", "zstd", "gzip, gzip"])
def test_content_encodings_other_than_gzip_are_415(
    server: RunningServer, pixels: np.ndarray, coding: str
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    status, answer, _ = _post(server, SELDON, seldon_payload(pixels[:1]), headers)
    assert status == 415
    message = answer["status"]["info"]
    assert coding in message and "Content-Encoding: gzip" in message


def test_identity_encoding_is_the_body_as_it_is(server: RunningServer, pixels: np.ndarray) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "identity"}
    assert _post(server, SELDON, seldon_payload(pixels[:1]), headers)[0] == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"this is not gzip", "not valid gzip"),
        (gzip.compress(b'{"data": {"ndarray": [[0]]}}', mtime=0)[:-12], "ends early"),
    ],
    ids=["not gzip", "cut short"],
)
def test_a_broken_gzip_body_is_400_saying_so(
    server: RunningServer, body: bytes, expected: str
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    status, answer, _ = _post(server, SELDON, body, headers)
    assert status == 400
    assert expected in answer["status"]["info"]


# ---- large bodies are parsed in a helper process


@pytest.mark.parametrize("path", [SELDON, V2])
def test_a_large_batch_parsed_in_the_helper_gets_the_models_probabilities(
    server: RunningServer, model_dir: Path, pixels: np.ndarray, path: str
) -> None:
    body = _body(path, pixels)
    assert INLINE_BODY_BYTES < len(body) < LIMIT
    status, answer, _ = _post(server, path, body, {"Content-Type": "application/json"})
    assert status == 200, answer
    expected = load_model(model_dir).predict_proba(pixels)
    np.testing.assert_allclose(_rows(path, answer), expected, atol=1e-6)


def test_a_large_batch_parsed_in_the_helper_keeps_its_error_and_status(
    server: RunningServer, pixels: np.ndarray
) -> None:
    images = pixels.copy()
    images[17, 300] = 2.0
    body = seldon_payload(images)
    assert INLINE_BODY_BYTES < len(body) < LIMIT
    status, answer, _ = _post(server, SELDON, body, {"Content-Type": "application/json"})
    assert status == 400
    assert "row 17, column 300 is 2" in answer["status"]["info"]
    status, answer, _ = _post(server, SELDON, body, {"Content-Type": "multipart/form-data"})
    assert status == 415  # the helper's BadInput comes back with its status


def test_a_helper_that_died_is_replaced(server: RunningServer, pixels: np.ndarray) -> None:
    body = seldon_payload(pixels)
    headers = {"Content-Type": "application/json"}
    assert _post(server, SELDON, body, headers)[0] == 200
    # The server runs in this process and shares its helper: the helper tells its pid.
    pid = asyncio.run(parse_elsewhere(os.getpid))
    (helper,) = [p for p in multiprocessing.active_children() if p.pid == pid]
    helper.kill()
    helper.join(10)
    status, answer, _ = _post(server, SELDON, body, headers)
    assert status == 200, answer
    assert len(answer["data"]["ndarray"]) == len(pixels)


def test_a_large_feedback_is_parsed_in_the_helper_and_answered_as_a_small_one(
    server: RunningServer, pixels: np.ndarray
) -> None:
    headers = {"Content-Type": "application/json"}
    path = "/api/v1.0/feedback"
    small = {"request": {"data": {"ndarray": [[0]]}, "meta": {"puid": "p1"}}, "reward": 1}
    large = json.dumps(
        {**small, "request": {**small["request"], "data": {"ndarray": pixels.tolist()}}}
    ).encode()
    assert len(large) > INLINE_BODY_BYTES
    stop_helper()  # the server shares this process's helper: none runs now
    status, answer, _ = _post(server, path, large, headers)
    assert (status, answer) == _post(server, path, json.dumps(small).encode(), headers)[:2]
    assert answer["meta"] == {"puid": "p1"} and "ndarray" in answer["data"]
    assert multiprocessing.active_children(), "no helper process parsed the large body"
    bad = large.replace(b'"reward": 1', b'"reward": "x"')
    status, answer, _ = _post(server, path, bad, headers)
    assert status == 400 and "reward" in answer["status"]["info"]


def test_the_helper_stops_with_the_server(model_dir: Path, pixels: np.ndarray) -> None:
    body = seldon_payload(pixels)
    assert len(body) > INLINE_BODY_BYTES
    settings = Settings(serve_port=0, max_body_bytes=LIMIT)
    with running_server(settings, model_dir) as running:
        assert _post(running, SELDON, body, {"Content-Type": "application/json"})[0] == 200
        helpers = multiprocessing.active_children()
        assert helpers, "no helper process parsed the large body"
    assert not set(helpers) & set(multiprocessing.active_children())


def _serve(model_dir: Path, workers: int) -> tuple[subprocess.Popen[str], str]:
    """`python -m hello_kubeflow.serving` in its own process group, once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "hello_kubeflow.serving", "--model", str(model_dir)]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if call(url + "/health/ping")[0] == 200:
                return server, url
        except OSError:
            time.sleep(0.2)
    os.killpg(server.pid, signal.SIGKILL)
    raise AssertionError(f"the server did not start: {server.communicate()[1]}")


def test_two_workers_parse_large_batches_and_stop_cleanly_on_ctrl_c(
    model_dir: Path, pixels: np.ndarray
) -> None:
    server, url = _serve(model_dir, workers=2)
    try:
        for _ in range(4):  # on either worker
            status, answer = call(url + SELDON, seldon_payload(pixels))
            assert status == 200, answer
            assert len(answer["data"]["ndarray"]) == len(pixels)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr


def test_the_helper_does_not_outlive_a_killed_server(model_dir: Path, pixels: np.ndarray) -> None:
    server, url = _serve(model_dir, workers=1)
    try:
        assert call(url + SELDON, seldon_payload(pixels))[0] == 200
        group = subprocess.run(
            ["pgrep", "-g", str(server.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert len(group) >= 2, "no helper process parsed the large body"
    finally:
        server.kill()  # SIGKILL: no chance to stop its helper
        server.wait(timeout=30)
        assert server.stderr is not None
        server.stderr.close()  # (not read: a helper left behind would hold it open)
    deadline = time.monotonic() + 30
    alive = group
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in group if Path(f"/proc/{pid}").exists()]
    for pid in alive:
        os.kill(int(pid), signal.SIGKILL)  # clean up what the test found left behind
    assert not alive, f"processes {alive} outlived the server"
