"""A real HTTP server on 127.0.0.1 that answers prediction requests from a script.

It plays a model server that answers wrongly (nine probabilities, `77`, a string,
an error body) or is not ready yet (503 first), and records what it was sent, so
the query's sanity check and retries are tested over real HTTP.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from http_support import BackgroundHTTPServer

NAMES = [f"class:{d}" for d in range(10)]
GOOD_ROW = [0.01, 0.01, 0.02, 0.01, 0.01, 0.01, 0.01, 0.9, 0.01, 0.01]


def seldon_answer(rows: Any, names: Any = NAMES) -> dict[str, Any]:
    """A Seldon answer with the given rows and class names."""
    return {"data": {"names": names, "ndarray": rows}, "meta": {"puid": "fake"}}


class FakeEndpoint(BackgroundHTTPServer):
    """Answer each request with the next scripted `(status, body)`; repeat the last one.

    A body that is `bytes` or `str` is sent as it is; anything else as JSON.
    """

    def __init__(self, *answers: tuple[int, Any], port: int = 0) -> None:
        self.answers = list(answers)
        self.received: list[tuple[str, str, bytes]] = []
        super().__init__(_Handler, port)

    @property
    def url(self) -> str:
        """The endpoint's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def next_answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.received.append((method, path, body))
            status, payload = self.answers[min(len(self.received), len(self.answers)) - 1]
        if isinstance(payload, str):
            return status, payload.encode()
        if isinstance(payload, bytes):
            return status, payload
        return status, json.dumps(payload).encode()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        endpoint: FakeEndpoint = self.server.owner  # type: ignore[attr-defined]
        status, payload = endpoint.next_answer("POST", self.path, body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what was received, not a log."""
