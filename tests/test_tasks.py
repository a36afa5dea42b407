"""The command line itself: every task listed, and option clashes refused up front."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INV = Path(sys.executable).parent / "inv"
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


def _inv(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INV), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": str(Path(sys.executable).parent),
            "HOME": str(tmp_path),
            "HK_OUTPUT_DIR": str(tmp_path / "out"),
        },
    )


def test_inv_list_shows_every_task_with_a_one_line_description(tmp_path: Path) -> None:
    result = _inv("--list", tmp_path=tmp_path)
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
        (("serve", "--container", "--host", "0.0.0.0"), "--host does not apply with --container"),
        (("train", "--dry-run"), "--dry-run shows a cluster run: add --mode cluster"),
    ],
)
def test_clashing_options_are_refused_before_any_work(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = _inv(*args, tmp_path=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
