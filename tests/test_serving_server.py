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
from contextlib import suppress
from pathlib import Path

import pytest
from inv_support import run_inv, start_inv
from serving_support import call, free_port, make_tiny_model

from hello_kubeflow.data.mnist import load_test_images
from hello_kubeflow.errors import ModelError, ServingError
from hello_kubeflow.serving import deadlines
from hello_kubeflow.serving.deadlines import MAX_HEAD_BYTES
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


# ---- slow clients: a request must arrive within HK_REQUEST_TIMEOUT

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


# ---- the transport: every client gets a JSON answer it can read

HUGE_BODY_BYTES = 53 * 1024 * 1024  # far over the 8 MiB default body limit


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[RunningServer]:
    with running_server(Settings(serve_port=0), model_dir) as running:
        yield running


def _head(answer: bytes) -> tuple[int, bytes, bytes]:
    """The status, the header block (lower case) and the body of a raw answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.lower(), body


def _assert_json_refusal(answer: bytes, status: int, says: str) -> None:
    code, head, body = _head(answer)
    assert code == status, answer[:200]
    assert b"content-type: application/json" in head
    assert b"connection: close" in head
    assert says in json.loads(body)["status"]["info"]


def test_headers_streaming_past_the_limit_get_431_before_they_end(server: RunningServer) -> None:
    """A header that never ends is refused once it passes the limit, not buffered forever."""
    sent, give_up = 0, 16 * MAX_HEAD_BYTES
    with _connect(server) as sock:
        sock.sendall(b"GET /health/ping HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while sent < give_up and not select.select([sock], [], [], 0.005)[0]:
            sock.sendall(b"a" * 4096)
            sent += 4096
        assert sent < give_up, "no answer while the header was still arriving"
        _assert_json_refusal(_until_closed(sock), 431, f"limit of {MAX_HEAD_BYTES:,} bytes")
    assert call(server.url + "/health/ping") == (200, "pong")


def test_many_headers_sent_at_once_over_the_limit_get_431(server: RunningServer) -> None:
    headers = "".join(f"X-Header-{i}: {'b' * 2000}\r\n" for i in range(40))  # ~80 KiB
    with _connect(server) as sock:
        sock.sendall(f"GET /health/ping HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        _assert_json_refusal(_until_closed(sock), 431, "send shorter headers")


def test_headers_as_large_as_envoy_forwards_are_served(server: RunningServer) -> None:
    """60 KiB of headers (Envoy's own limit) pass: a request the gateway forwards is served."""
    headers = {f"X-Header-{i}": "c" * 2000 for i in range(30)}
    assert call(server.url + "/health/ping", headers=headers) == (200, "pong")


@pytest.mark.parametrize(
    ("sent", "says"),
    [
        (b"FOO /health/ping HTTP/1.1\r\nHost: x\r\n\r\n", "Invalid method"),
        (
            b"POST /api/v1.0/predictions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"\r\nzz\r\n",
            "chunk size",
        ),
        (
            b"POST /api/v1.0/predictions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            "Content-Length",
        ),
        (b"GET /health/ping HTTP/1.1\nHost: x\n\n", "CRLF"),
    ],
    ids=["unknown method", "bad chunk size", "content-length with chunked", "LF-only lines"],
)
def test_a_request_that_is_not_valid_http_gets_a_json_400(
    server: RunningServer, sent: bytes, says: str
) -> None:
    with _connect(server) as sock:
        sock.sendall(sent)
        answer = _until_closed(sock)
    _assert_json_refusal(answer, 400, "not a valid HTTP/1.1 request")
    assert says in json.loads(_head(answer)[2])["status"]["info"]


def test_a_trailing_slash_is_a_404_that_never_echoes_the_host(server: RunningServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=SOCKET_SECONDS)
    try:
        connection.request(
            "POST",
            "/api/v1.0/predictions/",
            body=b"{}",
            headers={"Host": "evil.example", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 404
    assert response.getheader("location") is None
    assert b"evil" not in body
    assert "/api/v1.0/predictions/" in json.loads(body)["status"]["info"]


def _chunks(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_client_sending_its_whole_body_before_reading_still_reads_the_413(
    server: RunningServer, chunked: bool
) -> None:
    """Python's http.client reads nothing until its body is sent: the server drains it first."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=SOCKET_SECONDS)
    try:
        if chunked:
            connection.request(
                "POST", "/api/v1.0/predictions", body=_chunks(HUGE_BODY_BYTES), encode_chunked=True
            )
        else:
            connection.request("POST", "/api/v1.0/predictions", body=b" " * HUGE_BODY_BYTES)
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413
    assert "HK_MAX_BODY_BYTES" in body["status"]["info"]
    assert call(server.url + "/health/ping") == (200, "pong")


def test_what_is_drained_after_a_refusal_is_bounded(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past LINGER_BYTES the connection is closed, whatever the client still sends."""
    monkeypatch.setattr(deadlines, "LINGER_BYTES", 1024 * 1024)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=SOCKET_SECONDS)
    try:
        with pytest.raises(OSError):
            connection.request("POST", "/api/v1.0/predictions", body=b" " * HUGE_BODY_BYTES)
            connection.getresponse().read()
    finally:
        connection.close()


# ---- stopping: drain every arrived request, refuse new connections, 503 a late upload

STATUS_REQUEST = b"GET /health/status HTTP/1.1\r\nHost: x\r\n\r\n"


def _read_answer(sock: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response


def _server_processes(server: subprocess.Popen[str], workers: int) -> list[int]:
    """The processes that accept connections: the server itself, or its workers."""
    if workers == 1:
        return [server.pid]
    # Only the spawned workers: multiprocessing's resource tracker is a child too.
    deadline = time.monotonic() + 30
    while True:
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        spawned = [
            int(pid)
            for pid in children
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        if len(spawned) == workers or time.monotonic() > deadline:
            return spawned
        time.sleep(0.05)


def _wait_handles_sigterm(pid: int, seconds: float = 30.0) -> None:
    """Wait until `pid` catches SIGTERM: a worker still starting would be killed by it."""
    bit = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & bit:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not install its SIGTERM handler in {seconds} s")


def _refused_within(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_answers_what_arrived_refuses_new_connections_and_503s_a_late_upload(
    model_dir: Path, workers: int
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_inv(
        "serve",
        "--model",
        str(model_dir),
        "--port",
        str(port),
        "--workers",
        str(workers),
        env=SERVE_ENV,
    )
    sockets: list[socket.socket] = []
    frozen: list[int] = []
    try:
        _wait_until_up(url, server)
        kept = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(8)]
        sockets += kept
        for sock in kept:
            sock.sendall(STATUS_REQUEST)
            assert _read_answer(sock).status == 200
        upload = socket.create_connection(("127.0.0.1", port), timeout=20)
        sockets.append(upload)
        upload.sendall((HEAD + "Content-Length: 10000\r\n\r\n" + '{"data": {"nd').encode())
        # Frozen, the server receives requests it has not read: on kept connections,
        # and on new ones still queued in the listening socket.
        frozen = _server_processes(server, workers)
        for pid in frozen:
            _wait_handles_sigterm(pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        queued = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(4)]
        sockets += queued
        for sock in kept + queued:
            sock.sendall(STATUS_REQUEST)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        for sock in kept + queued:
            assert _read_answer(sock).status == 200
        assert _refused_within(port, 2.0), "a new connection was not refused during the drain"
        _assert_json_refusal(_until_closed(upload), 503, "the server is stopping")
    finally:
        for pid in frozen:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for sock in sockets:
            sock.close()
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
