"""inv setup in local mode (the default), and how it dispatches to cluster mode."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hello_kubeflow.cli.setup import setup
from hello_kubeflow.data.mnist import load_mnist
from hello_kubeflow.errors import SettingsError
from hello_kubeflow.retry import Backoff
from hello_kubeflow.settings import Settings


@pytest.mark.slow  # imports every dependency and verifies the full MNIST: about 5 s
def test_local_setup_reports_python_docker_and_mnist_then_the_next_command(
    mnist_dir: Path, tmp_path: Path
) -> None:
    report = setup(Settings(mnist_dir=mnist_dir, cache_dir=tmp_path / "cache"))

    python, docker, mnist = report.lines
    assert python.startswith("[ok]   Python: ") and "kfp " in python
    assert docker.startswith(("[ok]   Docker: engine", "[--]   Docker: not available (optional"))
    assert "inv build-push" in docker  # what Docker is for, found or not
    assert mnist.startswith("[ok]   MNIST: ") and str(mnist_dir) in mnist
    assert report.describe().endswith("Next: inv train (then inv serve and inv query; or inv demo)")


@pytest.mark.slow  # imports every dependency: about 5 s
def test_local_setup_offline_warns_that_it_has_only_the_offline_subset(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    settings = Settings(cache_dir=tmp_path / "cache", mnist_mirrors=(closed,))
    # Found unreachable once, quickly: a process does not try that mirror again.
    load_mnist(settings, retry=Backoff(initial=0.01, maximum=0.02, attempts=2, deadline=5.0))
    report = setup(settings)

    mnist = report.lines[-1]
    assert mnist.startswith("[warn] MNIST: only the 5,000-digit offline subset, not full MNIST")
    assert "Set MNIST_DIR" in mnist
    assert "[ok]" not in mnist


def test_local_dry_run_names_the_folder_the_files_go_to_and_fetches_nothing(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"

    report = setup(Settings(cache_dir=cache), dry_run=True)

    assert report.lines[-1] == (
        f"[--]   MNIST: would verify, or fetch and verify, the four IDX files in {cache / 'mnist'}"
    )
    assert not cache.exists()


def test_local_dry_run_with_mnist_dir_names_that_folder(tmp_path: Path) -> None:
    report = setup(Settings(mnist_dir=tmp_path / "mine", cache_dir=tmp_path / "c"), dry_run=True)

    assert report.lines[-1] == (
        f"[--]   MNIST: would verify the four IDX files in {tmp_path / 'mine'}"
    )


def test_cluster_mode_dry_run_without_rendered_manifests_says_how_to_render_them(
    tmp_path: Path,
) -> None:
    settings = Settings(mode="cluster", kubeconfig=tmp_path / "none", cache_dir=tmp_path)

    report = setup(settings, dry_run=True)

    assert report.mode == "cluster"
    assert "Plan for profile 'pipelines': Kubeflow Pipelines 2.17.0, Seldon Core v1.17.1." in (
        report.describe()
    )
    assert "inv setup --render DIR" in report.describe()
    # Ours ship with the package: listed even before anything is rendered.
    assert (
        "ClusterRole hello-kubeflow-kserve-policy-edit (aggregated into kubeflow-edit)"
        in report.describe()
    )
    assert not (tmp_path / "manifests").exists()


def test_an_unknown_mode_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="HK_MODE='cloud'"):
        setup(Settings(mode="cloud"))
