"""A real HTTP server on 127.0.0.1 that serves the MNIST files like a mirror, or fails like one.

The first path segment picks the behaviour, so one server plays several mirrors:

- `/ok/<file>`: the file as it is on disk.
- `/fail<k>/<file>`: HTTP 503 for the first k requests of that file, then the file.
- `/drop<k>/<file>`: for the first k requests, headers promise the whole file but the
  connection closes halfway through the body; then the file.
- `/garbled/<file>`: the gzip file with bytes in its middle changed (a corrupt stream).
- `/badsum/<file>`: a valid gzip file whose content has one byte changed.
- `/html/<file>`: an HTML error page with status 200, as captive portals send.
- `/missing/<file>`: HTTP 404.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from http_support import BackgroundHTTPServer


class MirrorServer(BackgroundHTTPServer):
    """Serve `root` over HTTP in a background thread; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        super().__init__(_Handler)

    def url(self, mode: str) -> str:
        """The base URL of one mirror, e.g. `url("fail2")`, ending with "/"."""
        return f"http://127.0.0.1:{self.port}/{mode}/"

    def count(self, mode: str) -> int:
        """How many requests the mirror `mode` received."""
        with self._lock:
            return sum(n for path, n in self.requests.items() if path.startswith(f"/{mode}/"))

    def record(self, path: str) -> int:
        """Count a request; returns how many times this path has been asked for."""
        with self._lock:
            self.requests[path] += 1
            return self.requests[path]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        mirror: MirrorServer = self.server.owner  # type: ignore[attr-defined]
        nth = mirror.record(self.path)
        mode, _, name = self.path.lstrip("/").partition("/")
        match = re.fullmatch(r"([a-z]+)(\d*)", mode)
        kind, times = (match.group(1), int(match.group(2) or 0)) if match else (mode, 0)
        path = mirror.root / name
        if kind == "missing" or "/" in name or not path.is_file():
            self.send_error(404)
            return
        if kind == "fail" and nth <= times:
            self.send_error(503, "Slow Down")
            return
        body = path.read_bytes()
        if kind == "garbled":
            middle = len(body) // 2
            body = (
                body[:middle]
                + bytes(b ^ 0xFF for b in body[middle : middle + 64])
                + body[middle + 64 :]
            )
        elif kind == "badsum":
            raw = bytearray(gzip.decompress(body))
            raw[-1] ^= 0xFF
            body = gzip.compress(bytes(raw), compresslevel=1)
        elif kind == "html":
            body = b"<!DOCTYPE html><html><body>Please log in to the Wi-Fi</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "drop" and nth <= times:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean
