"""Every benchmark script in scripts/ runs to the end on tiny inputs and prints its table.

A smoke test each: the figures are meaningless at these sizes, but a script broken
by a change to the package (a renamed function, a new required argument) fails
here rather than on the day someone wants its numbers. None writes docs/benchmarks.md.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from crd_schemas import UPSTREAM
from inv_support import environment_without_settings
from serving_support import make_tiny_model
from test_images import base_image, docker_client  # noqa: F401  (session fixtures)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"


@pytest.fixture
def tiny_model(mnist_dir: Path, tmp_path: Path) -> Path:
    """An 8-tree forest trained on 1,000 of the small MNIST's digits."""
    return make_tiny_model(mnist_dir, tmp_path / "model")


def _bench(script: str, *args: str, cache: Path, timeout: float = 300, **env: str) -> str:
    """Run `scripts/SCRIPT ARGS` with a clean environment and `cache` as HK_CACHE_DIR.

    Returns its stdout; fails with its stderr when it exits non-zero. The docs'
    benchmarks page is left as it was.
    """
    docs = DOCS.read_text()
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        cwd=REPO,
        env={**environment_without_settings(), "HK_CACHE_DIR": str(cache), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert DOCS.read_text() == docs, f"{script} changed {DOCS.name}"
    return done.stdout


def _benchmarks_doc() -> Any:
    """scripts/benchmarks_doc.py, the headings the scripts' `--write` replaces and the writer."""
    spec = importlib.util.spec_from_file_location(
        "benchmarks_doc", REPO / "scripts" / "benchmarks_doc.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_written_section_is_in_the_benchmarks_page_once() -> None:
    """`--write` replaces a section in its place by heading; a renamed one would go last."""
    doc = _benchmarks_doc()
    headings = [v for k, v in vars(doc).items() if k.isupper() and k != "DOCS"]
    lines = DOCS.read_text().splitlines()
    assert headings
    assert {heading: lines.count(heading) for heading in headings} == dict.fromkeys(headings, 1)


def test_writing_a_section_keeps_the_rest_of_its_topic(tmp_path: Path) -> None:
    """A section runs to the next heading of its level or above: its topic's others stay."""
    page = tmp_path / "benchmarks.md"
    page.write_text(
        "# Benchmarks\n\n## Serving\n\n### The forest\n\nold figures\n\n"
        "### The network\n\nkept\n\n## Image\n\nkept too\n"
    )
    write = _benchmarks_doc().write_section

    write("### The forest\n\nnew figures\n", page)
    write("### Cluster wait\n\nfirst figures\n", page)

    assert page.read_text() == (
        "# Benchmarks\n\n## Serving\n\n### The forest\n\nnew figures\n\n"
        "### The network\n\nkept\n\n## Image\n\nkept too\n\n"
        "### Cluster wait\n\nfirst figures\n"
    )


def test_bench_shape_measures_the_package(tmp_path: Path) -> None:
    out = _bench("bench_shape.py", "--runs", "1", cache=tmp_path)
    assert "largest module: hello_kubeflow/" in out
    assert "inv --list: median" in out


@pytest.mark.slow
def test_bench_wait_compares_the_watch_with_polling(tmp_path: Path) -> None:
    out = _bench(
        "bench_wait.py", "--runs", "1", "--pods", "3", "--rollout-seconds", "1", cache=tmp_path
    )
    assert "| last pod ready -> wait returns |" in out
    assert "| API requests, 3 pods ready over 1 s |" in out


@pytest.mark.slow
def test_bench_cluster_times_the_client_side(tmp_path: Path) -> None:
    out = _bench("bench_cluster.py", cache=tmp_path)
    assert "| compile the cluster pipeline (5 steps) |" in out
    assert "| deploy: server-side apply + status read |" in out


@pytest.mark.slow
def test_bench_install_installs_one_profile_once(tmp_path: Path) -> None:
    if not (UPSTREAM / "README.md").is_file():
        pytest.skip(f"no upstream manifests at {UPSTREAM} (set HK_TEST_UPSTREAM_DIR)")
    out = _bench(
        "bench_install.py",
        "--runs",
        "1",
        "--profile",
        "pipelines:seldon",
        cache=tmp_path,
        HK_TEST_UPSTREAM_DIR=str(UPSTREAM),
    )
    assert "| pipelines (seldon) |" in out
    assert "| dependencies up -> persistent crash fails the wait |" in out


@pytest.mark.slow
def test_bench_backend_runs_each_measurement_once(mnist_dir: Path, tmp_path: Path) -> None:
    if shutil.which("rclone") is None:
        pytest.skip(
            "rclone is not installed (Seldon's storage initializer): apt-get install rclone"
        )
    out = _bench(
        "bench_backend.py", "--runs", "1", cache=tmp_path, HK_TEST_MNIST_DIR=str(mnist_dir)
    )
    assert "| Dex + oauth2-proxy login (7 HTTP round trips) | 1 |" in out
    assert "| server start on the download + first answer (V2) | 1 |" in out


@pytest.mark.slow
def test_bench_mnist_times_every_way_to_the_digits(full_mnist_dir: Path, tmp_path: Path) -> None:
    out = _bench("bench_mnist.py", str(full_mnist_dir), cache=tmp_path)
    assert "| download into an empty cache (local server) |" in out
    assert "| offline subset, later calls |" in out


@pytest.mark.slow
def test_bench_train_times_a_preset(full_mnist_dir: Path, tmp_path: Path) -> None:
    out = _bench(
        "bench_train.py",
        "--mnist-dir",
        str(full_mnist_dir),
        "--preset",
        "book",
        "--singles",
        "5",
        "--no-write",
        cache=tmp_path,
        timeout=900,
    )
    assert "| book |" in out


@pytest.mark.slow
def test_bench_everyday_times_the_users_commands(
    tiny_model: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    out = _bench(
        "bench_everyday.py",
        "--model",
        str(tiny_model),
        "--mnist-dir",
        str(mnist_dir),
        "--runs",
        "1",
        cache=tmp_path,
    )
    assert "| `inv query --index 0`, the first (verifies the test files) |" in out
    assert "| `inv query` with no server at a local URL (exit 1) |" in out


@pytest.mark.slow
def test_bench_overhead_times_a_run_and_its_floor(mnist_dir: Path, tmp_path: Path) -> None:
    out = _bench("bench_overhead.py", "--mnist-dir", str(mnist_dir), "--runs", "1", cache=tmp_path)
    assert "| `inv train --preset book`: wall |" in out
    assert "| **floor: the sum, before any data is read, saved or scored** |" in out


@pytest.mark.slow
def test_bench_serving_drives_each_stack(
    tiny_model: Path, mnist_dir: Path, user_cache_dir: Path
) -> None:
    """The Seldon stacks run when the reference venv can be made, else say why not."""
    out = _bench(
        "bench_serving.py",
        "--model",
        str(tiny_model),
        "--requests",
        "20",
        "--seconds",
        "1",
        cache=user_cache_dir,  # where the Seldon reference venv is kept
        MNIST_DIR=str(mnist_dir),
        timeout=1800,
    )
    assert "| (a) this server: uvicorn + ONNX Runtime |" in out
    assert "| (d) in-process fast path (ONNX Runtime) |" in out


@pytest.mark.slow
@pytest.mark.docker
def test_bench_image_builds_and_pushes(
    base_image: str,  # noqa: F811
    docker_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed: sudo scripts/ci_docker.sh")
    out = _bench(
        "bench_image.py", "--no-write", cache=tmp_path, HK_TEST_BASE_IMAGE=base_image, timeout=1800
    )
    assert "cold build (no cache; wheels from PyPI)" in out
    assert "rebuild after a code-only change" in out
