"""Benchmark the project image as a notebook image (issue 16).

Builds, on the tests' notebook-contract base (`tests/notebook_base/`, FROM the
local Debian/Python base; no registry pull): the image as it was before the
notebook work (`--before`, a git revision; for its size only), the image now
with no layer cache (the cold build, wheels from PyPI), and again after a
code-only change. Then times `docker run` to Jupyter answering
`$NB_PREFIX/api/status`, several times. Writes the figures under
`## Issue 16: the notebook image` in docs/benchmarks.md.

    sudo scripts/ci_docker.sh && sudo scripts/base_image.sh
    .venv/bin/python scripts/bench_notebook.py [--before 508f83e] [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hello_kubeflow.images import plan_build
from hello_kubeflow.images.build import build_context, build_image
from hello_kubeflow.images.engine import connect
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from notebook_support import build_notebook_base  # noqa: E402

DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Issue 16: the notebook image"
BASE_IMAGE = os.environ.get("HK_TEST_BASE_IMAGE", "hello-kubeflow-base:bookworm")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
NB_PREFIX = "/notebook/kubeflow-user-example-com/hello-kubeflow"
START_TIMEOUT = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="508f83e", help="git revision before the change")
    parser.add_argument("--runs", type=int, default=5, help="docker run -> Jupyter samples")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the docs")
    args = parser.parse_args()

    name = f"hk-bench-nb-i16-{uuid.uuid4().hex[:6]}"
    values = {"HK_OUTPUT_DIR": "/tmp/hk-bench-nb-out", "HK_IMAGE_NAME": name}
    if CA_BUNDLE.is_file():
        values["HK_EXTRA_CA_CERTS"] = str(CA_BUNDLE)
    settings = Settings.from_env(values, dotenv=None)
    client = connect(settings)
    loads = [os.getloadavg()[0]]
    made: list[str] = []
    try:
        base = build_notebook_base(client, BASE_IMAGE, f"{name}-base:bench")
        made.append(base)
        with tempfile.TemporaryDirectory(prefix="hk-bench-nb-") as scratch:
            root = Path(scratch)
            before = _build(
                client, settings, base, _revision_context(args.before, root / "b"), "before"
            )
            made.append(before)
            context = _context_copy(root / "now")
            cold_plan = plan_build(
                settings, push=False, tag="cold", context=context, base_image=base
            )
            cold = _timed(lambda: build_image(client, cold_plan, no_cache=True))
            made.append(cold_plan.image)
            loads.append(os.getloadavg()[0])
            with (context / "hello_kubeflow" / "__init__.py").open("a") as source:
                source.write(f'\nBENCH_MARKER = "{uuid.uuid4().hex}"\n')
            warm_plan = plan_build(
                settings, push=False, tag="code", context=context, base_image=base
            )
            rebuild = _timed(lambda: build_image(client, warm_plan))
            made.append(warm_plan.image)
            loads.append(os.getloadavg()[0])
            starts = [_start_seconds(client, cold_plan.image) for _ in range(args.runs)]
            loads.append(os.getloadavg()[0])
            size = {
                tag: client.images.get(tag).attrs["Size"] / 1e6
                for tag in (base, before, cold_plan.image)
            }
    finally:
        for image in reversed(made):
            with contextlib.suppress(Exception):
                client.images.remove(image, noprune=False)
        client.close()
    body = _table(args.before, size, base, before, cold_plan.image, cold, rebuild, starts, loads)
    print(body)
    if not args.no_write:
        _write_section(body)
        print(f"written to {DOCS}", file=sys.stderr)
    return 0


def _build(client: Any, settings: Settings, base: str, context: Path, tag: str) -> str:
    plan = plan_build(settings, push=False, tag=tag, context=context, base_image=base)
    build_image(client, plan)
    return plan.image


def _revision_context(revision: str, target: Path) -> Path:
    """The build context as it was at `revision` (git archive of what the Dockerfile copies)."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "archive",
            revision,
            "Dockerfile",
            "pyproject.toml",
            "README.md",
            "hello_kubeflow",
            "certs",
            ".dockerignore",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    archive_path = target.parent / f"{target.name}.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(target, filter="data")
    return target


def _context_copy(target: Path) -> Path:
    target.mkdir(parents=True)
    with build_context(REPO, "Dockerfile", None) as context, tarfile.open(fileobj=context) as tar:
        tar.extractall(target, filter="data")
    shutil.copy(REPO / ".dockerignore", target / ".dockerignore")
    return target


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def _start_seconds(client: Any, image: str) -> float:
    """From `docker run` (create + start) to Jupyter answering $NB_PREFIX/api/status."""
    started = time.monotonic()
    container = client.containers.run(
        image,
        detach=True,
        environment={"NB_PREFIX": NB_PREFIX},
        tmpfs={"/home/jovyan": "uid=1000,gid=100,mode=2775"},
        ports={"8888/tcp": ("127.0.0.1", None)},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8888/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}{NB_PREFIX}/api/status"
        while time.monotonic() - started < START_TIMEOUT:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"Jupyter did not answer within {START_TIMEOUT} s")
    finally:
        container.remove(force=True)


def _table(
    revision: str,
    size: dict[str, float],
    base: str,
    before: str,
    now: str,
    cold: float,
    rebuild: float,
    starts: list[float],
    loads: list[float],
) -> str:
    above_before, above_now = size[before] - size[base], size[now] - size[base]
    load_text = " -> ".join(f"{x:.1f}" for x in loads)
    return "\n".join(
        [
            "The image on the tests' notebook-contract base (`tests/notebook_base/`: the "
            "Debian/Python base plus jovyan, an init, jupyter-server on 8888 under "
            "`NB_PREFIX`), built with the docker SDK (Docker Engine 20.10, legacy builder). "
            "The real default base, "
            "`ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0`, cannot be "
            "pulled here; what this change adds above any base is the same.",
            "",
            "Command: `.venv/bin/python scripts/bench_notebook.py`",
            f"Machine: {os.cpu_count()} cores ({platform.machine()}), shared with other jobs; "
            f"load average (1 min) at start -> after the cold build -> after the rebuild -> "
            f"after the starts: {load_text}.",
            "",
            "| what | value |",
            "|---|---|",
            f"| notebook-contract base image size | {size[base]:.1f} MB |",
            f"| image size above the base, before (`{revision}`: model server as CMD) "
            f"| {above_before:.1f} MB |",
            f"| image size above the base, now (ipykernel + kernelspec added) "
            f"| {above_now:.1f} MB ({above_now - above_before:+.1f} MB) |",
            f"| cold build (no cache; wheels from PyPI) | {cold:.1f} s |",
            f"| rebuild after a code-only change | {rebuild:.1f} s "
            f"({rebuild / cold:.0%} of the cold build; target: at most 20%) |",
            f"| `docker run` -> Jupyter answers `$NB_PREFIX/api/status` "
            f"| median {statistics.median(starts):.2f} s, max {max(starts):.2f} s "
            f"(n={len(starts)}) |",
        ]
    )


def _write_section(body: str) -> None:
    text = DOCS.read_text() if DOCS.is_file() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{body}\n"
    else:
        end = text.find("\n## ", start + len(SECTION))
        rest = text[end:] if end >= 0 else "\n"
        text = text[:start] + f"{SECTION}\n\n{body}\n" + rest
    DOCS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
