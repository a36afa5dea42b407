"""The command line itself: every task listed, and option clashes refused up front."""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from inv_support import REPO, run_inv

TASKS = [
    "build-push",
    "clean",
    "compare",
    "compile",
    "demo",
    "notebook",
    "query",
    "serve",
    "setup",
    "status",
    "test",
    "train",
    "undeploy",
    "wait",
]


def _environment(tmp_path: Path) -> dict[str, str]:
    """Only the venv on PATH, a fresh HOME, outputs in `tmp_path`."""
    return {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "HK_OUTPUT_DIR": str(tmp_path / "out"),
    }


def test_inv_list_shows_every_task_with_a_one_line_description(tmp_path: Path) -> None:
    result = run_inv("--list", env=_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    listed = {
        line.split()[0]: line.split(maxsplit=1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("  ") and line.strip() and not line.startswith("    ")
    }
    assert sorted(listed) == sorted(TASKS)
    for name, description in listed.items():
        assert description[0].isupper(), f"{name} has no description"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("query", "--count", "5", "--image", "d.png"), "--count sends MNIST test images"),
        (("query", "--count", "5", "--plot", "p.png"), "--count sends MNIST test images"),
        (("serve", "--container", "--host", "0.0.0.0"), "--host does nothing here: the container"),
        (("train", "--dry-run"), "--dry-run does nothing here: it shows a cluster run"),
        (("train", "--mode", "cluster", "--runner", "docker"), "--runner does nothing here"),
        (("query", "--mode", "cluster", "--protocol", "v2"), "--protocol does nothing here"),
        (("notebook", "--cpu", "2"), "--cpu does nothing here: they are for a cluster"),
        (("notebook", "--delete"), "--delete does nothing here: they are for a cluster"),
        (("notebook", "--mode", "cluster", "--port", "9999"), "--port does nothing here"),
    ],
)
def test_clashing_options_are_refused_before_any_work(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_inv(*args, env=_environment(tmp_path))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def _task_objects() -> dict[str, Any]:
    from invoke import Collection

    sys.path.insert(0, str(REPO))
    try:
        import tasks
    finally:
        sys.path.remove(str(REPO))
    collection = Collection.from_module(tasks)
    return {name: collection[name] for name in collection.task_names}


def test_every_option_of_every_task_has_help() -> None:
    """`inv --help TASK` explains each option: none is left bare."""
    for name, task in _task_objects().items():
        options = [p for p in inspect.signature(task.body).parameters if p != "c"]
        missing = [o for o in options if not task.help.get(o)]
        assert not missing, f"inv {name}: no help for {missing}"


def test_every_task_with_a_result_takes_json() -> None:
    """`--json` means the same everywhere; only the long-running serve and test lack it."""
    for name, task in _task_objects().items():
        options = inspect.signature(task.body).parameters
        assert ("json" in options) == (name not in ("serve", "test")), name


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("serve", "--port", "abc"), "--port='abc': expected a whole number"),
        (("query", "--wait", "abc"), "--wait='abc': expected a number"),
        (("query", "--index", "abc"), "--index='abc': expected a whole number"),
        (("clean", "--keep", "many"), "--keep='many': expected a whole number"),
        (("train", "--trees", "1.5"), "--trees='1.5': expected a whole number"),
        (("compare", "--train-limit", "x"), "--train-limit='x': expected a whole number"),
        (("query", "--url", "notaurl"), "--url='notaurl': expected an http:// or https:// URL"),
    ],
)
def test_a_malformed_option_value_is_a_clean_error(
    tmp_path: Path, args: tuple[str, ...], shown: str
) -> None:
    """The same one paragraph as a malformed setting, exit 1, never a traceback."""
    result = run_inv(*args, env=_environment(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid settings")
    assert shown in result.stderr
    assert "Traceback" not in result.stderr


def test_a_subfolder_uses_the_project_roots_env_and_outputs(tmp_path: Path) -> None:
    """From docs/, `.env` and the relative HK_OUTPUT_DIR are the checkout's, not the cwd's."""
    root = tmp_path / "checkout"
    for name in ("tasks.py", "pyproject.toml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text((REPO / name).read_text())
    (root / ".env").write_text("HK_OUTPUT_DIR=elsewhere\n")
    for run in ("r1", "r2"):
        (root / "elsewhere" / "runs" / run).mkdir(parents=True)
        os.utime(root / "elsewhere" / "runs" / run, (1_700_000_000, 1_700_000_000))  # not running
    (root / "docs").mkdir()

    result = run_inv(
        "clean",
        "--keep",
        "0",
        "--dry-run",
        "--json",
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)},
        cwd=root / "docs",
    )

    assert result.returncode == 0, result.stderr
    removed = json.loads(result.stdout.splitlines()[-1])["removed"]
    assert sorted(removed) == [str(root / "elsewhere" / "runs" / r) for r in ("r1", "r2")]
