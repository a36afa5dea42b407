"""Benchmark the project image: cold build, code-only rebuild, push, size above the base.

Builds from a scratch copy of the build context (so the checkout is never
edited), FROM the local Debian/Python base (`scripts/base_image.sh`), and pushes
to a throwaway `docker-registry` on a free 127.0.0.1 port (removed afterwards).
The cold build uses no layer cache, so it includes downloading every wheel from
PyPI. Writes the figures into their section of docs/benchmarks.md.

    sudo scripts/ci_docker.sh && sudo scripts/base_image.sh
    .venv/bin/python scripts/bench_image.py [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks_doc import DOCS, IMAGE, write_section

from hello_kubeflow.images.build import build_context, build_image
from hello_kubeflow.images.engine import connect
from hello_kubeflow.images.plan import plan_build
from hello_kubeflow.images.push import push_image
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = os.environ.get("HK_TEST_BASE_IMAGE", "hello-kubeflow-base:bookworm")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
REGISTRY_START_SECONDS = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave the docs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="hk-bench-image-") as scratch:
        root = Path(scratch)
        context = _context_copy(root / "context")
        with _registry(root / "registry") as address:
            figures = _measure(root, context, address)
    table = _table(figures)
    print(table)
    if not args.no_write:
        write_section(f"{IMAGE}\n\n{table}\n")
        print(f"written to {DOCS}", file=sys.stderr)
    return 0


def _measure(root: Path, context: Path, registry: str) -> dict[str, float]:
    values = {"HK_OUTPUT_DIR": str(root / "out"), "HK_BASE_IMAGE": BASE_IMAGE}
    if CA_BUNDLE.is_file():
        values["HK_EXTRA_CA_CERTS"] = str(CA_BUNDLE)
    settings = Settings.from_env({**values, "CONTAINER_REGISTRY": registry}, dotenv=None)
    client = connect(settings.docker_timeout)
    name = f"hk-bench-{uuid.uuid4().hex[:8]}"
    settings = settings.replace(image_name=name)
    figures: dict[str, float] = {}
    try:
        cold = plan_build(settings, tag="cold", context=context)
        figures["cold build (no cache; wheels from PyPI)"] = _timed(
            lambda: build_image(client, cold, no_cache=True)
        )
        figures["push, first (every layer to an empty registry)"] = _timed(
            lambda: push_image(client, cold.repository, cold.tag)
        )
        with (context / "hello_kubeflow" / "__init__.py").open("a") as source:
            source.write(f'\nBENCH_MARKER = "{uuid.uuid4().hex}"\n')
        warm = plan_build(settings, tag="code-change", context=context)
        figures["rebuild after a code-only change"] = _timed(lambda: build_image(client, warm))
        figures["push after a code-only change (changed layers only)"] = _timed(
            lambda: push_image(client, warm.repository, warm.tag)
        )
        size = client.images.get(cold.image).attrs["Size"]
        base = client.images.get(BASE_IMAGE).attrs["Size"]
        figures["image size above the base, MB"] = (size - base) / 1e6
        figures["base image size, MB"] = base / 1e6
    finally:
        for image in (f"{name}:cold", f"{name}:code-change"):
            with contextlib.suppress(Exception):
                client.images.remove(f"{registry}/{image}")  # and its step images
        client.close()
    return figures


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def _context_copy(target: Path) -> Path:
    target.mkdir(parents=True)
    with build_context(REPO, "Dockerfile", None) as context, tarfile.open(fileobj=context) as tar:
        tar.extractall(target, filter="data")
    shutil.copy(REPO / ".dockerignore", target / ".dockerignore")
    return target


@contextlib.contextmanager
def _registry(root: Path) -> Iterator[str]:
    """A throwaway docker-registry on a free 127.0.0.1 port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root.mkdir(parents=True)
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    with (root / "log").open("wb") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + REGISTRY_START_SECONDS
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def _table(figures: dict[str, float]) -> str:
    cold = figures["cold build (no cache; wheels from PyPI)"]
    rebuild = figures["rebuild after a code-only change"]
    load = os.getloadavg()[0]
    rows = [f"| {what} | {value:.1f} |" for what, value in figures.items()]
    return "\n".join(
        [
            "The project image built FROM the tests' Debian/Python base (debootstrap, "
            "`scripts/base_image.sh`), pushed to a local `docker-registry` on 127.0.0.1 "
            "(disk to disk: no network in the push). Docker Engine 20.10, legacy builder "
            "via the docker SDK.",
            "",
            "Command: `.venv/bin/python scripts/bench_image.py`",
            f"Machine: {os.cpu_count()} cores ({platform.machine()}), load average {load:.1f} "
            "at the end of the run (other work on the machine makes times vary).",
            "",
            "| what | seconds (or MB) |",
            "|---|---|",
            *rows,
            "",
            f"Code-only rebuild: {rebuild / cold:.0%} of the cold build (target: at most 20%).",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
