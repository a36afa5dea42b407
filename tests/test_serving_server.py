"""Starting and stopping the server: clear startup errors, `inv serve`, graceful stop."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inv_support import run_inv, start_inv
from serving_support import call, free_port, make_tiny_model

from hello_kubeflow.data.mnist import load_test_images
from hello_kubeflow.errors import ModelError, ServingError
from hello_kubeflow.serving.server import (
    RunningServer,
    bind_socket,
    resolve_model_dir,
    running_server,
)
from hello_kubeflow.settings import Settings

SERVE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
START_SECONDS = 60.0


@pytest.fixture(scope="module")
def model_dir(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(mnist_dir, tmp_path_factory.mktemp("model"))


def _wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()[1]}")
        try:
            if call(url + "/health/ping")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not come up")


def test_missing_model_directory_is_a_model_error(tmp_path: Path) -> None:
    with (
        pytest.raises(ModelError, match="no model directory"),
        running_server(Settings(serve_port=0), tmp_path / "nowhere"),
    ):
        pass


def test_a_directory_without_a_model_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text("this is not json")
    with (
        pytest.raises(ModelError, match="not readable JSON"),
        running_server(Settings(serve_port=0), tmp_path),
    ):
        pass


def test_inv_serve_with_an_impossible_port_exits_with_a_settings_error() -> None:
    process = start_inv("serve", "--port", "70000", env=SERVE_ENV)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "--port=70000: expected a port number between 1 and 65535" in stderr
    assert "Traceback" not in stderr


def test_a_busy_port_is_a_serving_error_naming_the_fix() -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(ServingError, match=r"already in use.*--port"):
            bind_socket("127.0.0.1", port)
    finally:
        taken.close()


def test_no_trained_model_says_run_inv_train_first(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="inv train"):
        resolve_model_dir(Settings(output_dir=tmp_path))


def test_model_option_wins_over_hk_model_dir(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path / "from-env")
    assert resolve_model_dir(settings, str(tmp_path / "given")) == tmp_path / "given"
    assert resolve_model_dir(settings) == tmp_path / "from-env"


def test_inv_serve_with_a_bad_model_exits_1_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    process = start_inv(
        "serve", "--model", str(tmp_path / "nowhere"), "--port", str(free_port()), env=SERVE_ENV
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "no model directory" in stderr
    assert "Traceback" not in stderr


def test_inv_serve_answers_inv_query_and_stops_gracefully_on_sigterm(
    model_dir: Path, mnist_dir: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_inv("serve", "--model", str(model_dir), "--port", str(port), env=SERVE_ENV)
    try:
        _wait_until_up(url, server)
        query = run_inv(
            "query",
            "--index",
            "0",
            "--json",
            env={"PATH": os.environ["PATH"], "HK_QUERY_URL": url, "MNIST_DIR": str(mnist_dir)},
            timeout=60,
        )
        assert query.returncode == 0, query.stderr
        answer = json.loads(query.stdout.strip().splitlines()[-1])
        assert answer["label"] == int(load_test_images(Settings(mnist_dir=mnist_dir)).y[0])
        assert answer["sanity"].startswith("ok")
        assert len(answer["probabilities"]) == 10
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert "server stopped" in stderr


@pytest.mark.slow
def test_two_workers_serve_and_stop_together(model_dir: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_inv(
        "serve", "--model", str(model_dir), "--port", str(port), "--workers", "2", env=SERVE_ENV
    )
    try:
        _wait_until_up(url, server)
        assert call(url + "/v2/health/ready") == (200, {"ready": True})
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert call_refused(url)


def call_refused(url: str) -> bool:
    """True when nothing listens at `url` any more (every worker has stopped)."""
    try:
        call(url + "/health/ping")
    except OSError:
        return True
    return False


# ---- slow clients (issue 9): a request must arrive within HK_REQUEST_TIMEOUT

REQUEST_SECONDS = 1.0
SOCKET_SECONDS = 10.0  # far above the deadline: a held connection fails the test
HEAD = "POST /api/v1.0/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def strict_server(model_dir: Path) -> Iterator[RunningServer]:
    settings = Settings(serve_port=0, request_timeout=REQUEST_SECONDS)
    with running_server(settings, model_dir) as running:
        yield running


def _connect(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_SECONDS)


def _until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _assert_timed_out(answer: bytes) -> None:
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:100]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    assert "HK_REQUEST_TIMEOUT" in json.loads(body)["status"]["info"]


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects and says nothing
        HEAD.encode(),  # headers never finished
        (HEAD + "Content-Length: 1000\r\n\r\n" + '{"data": {"ndarray": [[0.5').encode(),  # body
    ],
    ids=["nothing", "half the headers", "half the body"],
)
def test_a_stalled_client_gets_408_and_is_disconnected(
    strict_server: RunningServer, sent: bytes
) -> None:
    with _connect(strict_server) as sock:
        sock.sendall(sent)
        _assert_timed_out(_until_closed(sock))
    assert call(strict_server.url + "/health/ping") == (200, "pong")


def test_a_client_sending_a_byte_at_a_time_is_cut_off(strict_server: RunningServer) -> None:
    """Slowloris: each byte comes in time for any per-read timeout, the request never does."""
    with _connect(strict_server) as sock:
        for byte in (HEAD * 10).encode():
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 0.05)[0]:
                break
        _assert_timed_out(_until_closed(sock))


def test_many_slow_clients_are_all_disconnected_and_the_server_keeps_serving(
    strict_server: RunningServer,
) -> None:
    sockets = [_connect(strict_server) for _ in range(100)]
    try:
        for sock in sockets:
            sock.sendall(HEAD.encode())
        assert call(strict_server.url + "/health/ping") == (200, "pong")
        for sock in sockets:
            _assert_timed_out(_until_closed(sock))
    finally:
        for sock in sockets:
            sock.close()


def test_keep_alive_requests_with_idle_time_between_them_are_not_cut_off(
    strict_server: RunningServer,
) -> None:
    """The deadline runs from a request's first byte, not from the connection's start."""
    connection = http.client.HTTPConnection("127.0.0.1", strict_server.port, timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", "/health/status")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            time.sleep(REQUEST_SECONDS * 0.7)
    finally:
        connection.close()
