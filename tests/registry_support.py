"""Real registries for the image tests: Debian's `docker-registry`, and a flaky front.

`Registry` runs `docker-registry serve` on a free 127.0.0.1 port (optionally with
htpasswd authentication). `RegistryFront` is a small HTTP reverse proxy in front
of a registry that answers 503 to the first N requests matching a pattern and
forwards everything else, counting what it saw: a registry that fails for a
while, then recovers.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

START_TIMEOUT = 30.0
HTTP_TIMEOUT = 30.0
_HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "keep-alive"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, deadline: float = START_TIMEOUT) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {deadline} s")


class Registry:
    """`docker-registry serve` on 127.0.0.1, storage in `root`; a context manager."""

    def __init__(self, root: Path, *, htpasswd: Path | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        auth = (
            f"auth:\n  htpasswd:\n    realm: hello-kubeflow-tests\n    path: {htpasswd}\n"
            if htpasswd
            else ""
        )
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "config.yml"
        self.config.write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            f"http:\n  addr: {self.address}\n  secret: hello-kubeflow-tests\n{auth}"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Registry:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise FileNotFoundError("docker-registry (apt-get install docker-registry)")
        self._log = (self.root / "registry.log").open("wb")
        self._process = subprocess.Popen(
            [binary, "serve", str(self.config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_listening(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()

    def tags(self, name: str, auth_header: str = "") -> list[str]:
        """The tags the registry lists for `name` (its HTTP API: /v2/<name>/tags/list)."""
        request = urllib.request.Request(f"http://{self.address}/v2/{name}/tags/list")
        if auth_header:
            request.add_header("Authorization", auth_header)
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return list(json.load(response).get("tags") or [])

    def manifest_digest(self, name: str, reference: str) -> str:
        """The digest the registry serves for `name` at a tag or digest."""
        request = urllib.request.Request(
            f"http://{self.address}/v2/{name}/manifests/{reference}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return str(response.headers["Docker-Content-Digest"])


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FrontServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _relay(self) -> None:
        front = self.server
        body = self._body()
        request = f"{self.command} {self.path}"
        with front.lock:
            front.seen.append(request)
            fail = front.pattern.search(request) is not None and front.failed < front.failures
            if fail:
                front.failed += 1
        if fail:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = http.client.HTTPConnection("127.0.0.1", front.upstream_port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in _HOP_HEADERS:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _relay


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    upstream_port: int
    failures: int
    failed: int
    pattern: re.Pattern[str]
    seen: list[str]
    lock: threading.Lock


class RegistryFront:
    """A reverse proxy to a registry that fails the first `failures` matching requests.

    Args:
        upstream_port: the real registry's port on 127.0.0.1.
        failures: how many requests matching `pattern` get a 503.
        pattern: a regex over "METHOD /path" (default: every request).
        port: the port to listen on (default: a free one).
    """

    def __init__(
        self, upstream_port: int, *, failures: int = 0, pattern: str = ".", port: int = 0
    ) -> None:
        self._server = _FrontServer(("127.0.0.1", port), _FrontHandler)
        self._server.upstream_port = upstream_port
        self._server.failures = failures
        self._server.failed = 0
        self._server.pattern = re.compile(pattern)
        self._server.seen = []
        self._server.lock = threading.Lock()
        self.port: int = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def failed(self) -> int:
        """How many requests got a 503 so far."""
        return self._server.failed

    @property
    def seen(self) -> list[str]:
        """Every request so far, as "METHOD /path"."""
        with self._server.lock:
            return list(self._server.seen)

    def __enter__(self) -> RegistryFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
