"""inv clean --caches: the project's entries of the cache folder are listed, then removed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inv_support import environment_without_settings, run_inv

from hello_kubeflow.pipeline.caches import clean_caches


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A cache folder as the project and its tests fill it, plus a file of the user's own."""
    folder = tmp_path / "cache"
    (folder / "mnist").mkdir(parents=True)
    (folder / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"x" * 2_000_000)
    venv = folder / "seldon-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib.py").write_bytes(b"y" * 3_000_000)
    interpreter = tmp_path / "python3"
    interpreter.write_bytes(b"z" * 9_000_000)
    (venv / "bin" / "python").symlink_to(interpreter)  # a venv links its interpreter
    (folder / "verified-idx.json").write_text("{}")
    (folder / "dataset.npz").write_bytes(b"d" * 1000)  # the last run's kept dataset
    (folder / "notes.txt").write_text("the user's, not the project's")
    return folder


def test_a_dry_run_lists_each_cache_with_its_size_and_removes_nothing(cache: Path) -> None:
    result = clean_caches(cache, dry_run=True)

    text = result.describe()
    assert f"would remove {cache / 'mnist'} (2.0 MB): downloaded MNIST" in text
    assert f"would remove {cache / 'seldon-venv'} (3.0 MB): Seldon Core's own wrapper" in text
    assert text.splitlines()[-1] == "would free 5.0 MB"
    assert (cache / "seldon-venv" / "lib.py").is_file()
    assert (cache / "mnist").is_dir()


def test_clean_caches_removes_the_projects_entries_and_nothing_else(
    cache: Path, tmp_path: Path
) -> None:
    result = clean_caches(cache)

    assert sorted(p.name for p, _ in result.removed) == [
        "dataset.npz",
        "mnist",
        "seldon-venv",
        "verified-idx.json",
    ]
    assert [p.name for p in cache.iterdir()] == ["notes.txt"]
    assert (tmp_path / "python3").is_file()  # the venv's link went, not what it pointed to
    assert clean_caches(cache).describe() == f"no cache to remove in {cache}"


def test_inv_clean_caches_follows_hk_cache_dir(cache: Path, tmp_path: Path) -> None:
    env = {**environment_without_settings(), "HK_CACHE_DIR": str(cache)}
    env["HK_OUTPUT_DIR"] = str(tmp_path / "outputs")

    listed = run_inv("clean", "--caches", "--dry-run", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout.splitlines()[-1])
    assert report["dry_run"] is True
    assert report["freed_bytes"] > 5_000_000
    assert (cache / "seldon-venv").is_dir()

    done = run_inv("clean", "--caches", env=env)
    assert done.returncode == 0, done.stderr
    assert f"removed {cache / 'seldon-venv'}" in done.stdout
    assert not (cache / "seldon-venv").exists()


def test_keep_with_caches_is_refused_naming_both(cache: Path) -> None:
    env = {**environment_without_settings(), "HK_CACHE_DIR": str(cache)}
    done = run_inv("clean", "--caches", "--keep", "1", env=env)

    assert done.returncode == 1
    assert "--keep=1 does nothing here: --caches removes caches, not runs" in done.stderr
    assert (cache / "seldon-venv").is_dir()
