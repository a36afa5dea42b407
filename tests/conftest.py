"""Shared fixtures: a clean environment, the shared MNIST copy, small data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mirror_server import MirrorServer

from hello_kubeflow.settings import VARIABLES

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = Path(os.environ.get("HK_TEST_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No variable the project reads leaks from the developer's shell into a test."""
    for var in VARIABLES:
        monkeypatch.delenv(var.env, raising=False)
    yield


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The full MNIST copy shipped beside the project (../shared/data/mnist)."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"full MNIST not found at {SHARED_MNIST} (set HK_TEST_MNIST_DIR)")
    return SHARED_MNIST


@pytest.fixture
def mnist_mirror(mnist_dir: Path) -> Iterator[MirrorServer]:
    """A real HTTP server on 127.0.0.1 serving the MNIST files as mirrors that work or fail."""
    with MirrorServer(mnist_dir) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_offline_decision() -> Iterator[None]:
    """Each test decides afresh which mirrors are reachable (a process remembers it)."""
    from hello_kubeflow.mnist import forget_offline

    forget_offline()
    yield
    forget_offline()
