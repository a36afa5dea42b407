"""The one HTTP client: a timeout on every call, failures told apart by their type."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from fake_endpoint import FakeEndpoint

from hello_kubeflow.http_client import is_transient, is_unreachable, send, status_error
from hello_kubeflow.retry import describe_failure, is_name_not_resolved


def _failure(url: str, timeout: float = 5.0) -> requests.RequestException:
    with pytest.raises(requests.RequestException) as raised:
        send("POST", url, timeout=timeout, data=b"{}")
    return raised.value


@contextmanager
def _listening() -> Iterator[tuple[socket.socket, str]]:
    """A socket that accepts connections (the backlog) and a URL to it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server, f"http://127.0.0.1:{server.getsockname()[1]}/"


def test_nothing_listening_and_an_unknown_host_are_told_apart() -> None:
    with _listening() as (_, url):
        pass  # the port is free again
    refused = _failure(url)
    unknown = _failure("http://mirror.invalid/")

    assert describe_failure(refused) == "Connection refused"
    assert is_unreachable(refused) and is_transient(refused)
    assert describe_failure(unknown) == "the host name does not resolve"
    assert is_name_not_resolved(unknown) and not is_transient(unknown)


def test_a_server_that_never_answers_times_out_and_one_that_hangs_up_is_named() -> None:
    with _listening() as (_, url):
        silent = _failure(url, timeout=0.3)
    with _listening() as (server, url):

        def hang_up() -> None:
            connection, _ = server.accept()
            connection.recv(65536)
            connection.close()

        threading.Thread(target=hang_up, daemon=True).start()
        dropped = _failure(url)

    assert describe_failure(silent) == "timed out" and is_transient(silent)
    assert describe_failure(dropped) == "Remote end closed connection without response"
    assert is_transient(dropped)


def test_words_in_a_message_do_not_make_a_failure_what_they_name() -> None:
    """A message mentioning DNS or a timeout is not a DNS failure or a timeout."""
    hook = RuntimeError("Failed to resolve the chart: getaddrinfo failed in its hook")
    job = ValueError("the job timed out after 3 retries")

    assert not is_name_not_resolved(hook)
    assert describe_failure(hook) == str(hook)
    assert describe_failure(job) == str(job)


def test_only_statuses_that_may_heal_are_worth_another_try() -> None:
    with FakeEndpoint((503, "busy"), (404, "no such model")) as endpoint:
        busy, missing = (status_error(send("POST", endpoint.url, timeout=5)) for _ in range(2))

    assert str(busy) == "HTTP 503 Service Unavailable"
    assert describe_failure(busy) == "HTTP 503"
    assert is_transient(busy) and not is_transient(missing)
    assert not is_transient(missing, frozenset({503}))


def test_a_netrc_entry_does_not_replace_the_credentials_a_request_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `default` login in ~/.netrc would turn a gateway's bearer token into Basic auth."""
    import http.server

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        send("GET", url, timeout=5, headers={"Authorization": "Bearer token"})
        send("GET", url, timeout=5)  # no credentials of its own: netrc's, as requests does
        host, port = server.server_address[:2]
        monkeypatch.setenv("NETRC", str(tmp_path / "none"))
        send("GET", f"http://user:pw@{host}:{port}/", timeout=5)  # a URL's own, kept
        server.shutdown()

    assert seen == [
        "Bearer token",
        "Basic " + base64.b64encode(b"someone:secret").decode(),
        "Basic " + base64.b64encode(b"user:pw").decode(),
    ]
