"""What a clone carries: nothing that works only on the machine it was written on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from crd_schemas import UPSTREAM

REPO = Path(__file__).resolve().parents[1]
# Tests that read upstream's files through `crd_schemas.upstream_file`, one per way in.
_UPSTREAM_READERS = (
    "tests/test_model_handover.py::test_the_store_is_where_kfp_2_17_puts_it",
    "tests/test_deploy_deploy.py::test_the_served_model_fits_its_crd_schema",
    "tests/test_kfp_remote.py::test_a_successful_run_is_followed_step_by_step",
)


def _tracked_files() -> list[Path]:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z"],
            capture_output=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [REPO / name for name in done.stdout.decode().split("\0") if name]


def _machine_folders() -> list[str]:
    """The folders of this machine a file could name: the checkout's parent, the shared folder."""
    folders = {REPO.parent, REPO.parent.resolve(), UPSTREAM.parent, UPSTREAM.resolve().parent}
    return sorted(str(f) for f in folders if len(f.parts) > 1)


def test_no_tracked_file_names_a_folder_of_this_machine() -> None:
    """A clone elsewhere must find `../shared` relative to itself, not at our absolute path."""
    pattern = re.compile(
        r"(?<![\w.~-])(" + "|".join(re.escape(f) for f in _machine_folders()) + r")/"
    )
    found = []
    for path in _tracked_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the work tree
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")

    assert found == []


def test_without_the_upstream_folder_its_readers_skip_instead_of_failing(tmp_path: Path) -> None:
    """HK_TEST_UPSTREAM_DIR pointing nowhere: the documented skip, never FileNotFoundError."""
    env = {**os.environ, "HK_TEST_UPSTREAM_DIR": str(tmp_path / "nowhere")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
    done = subprocess.run(
        [*command, *_UPSTREAM_READERS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"^\d+ skipped in ", done.stdout.splitlines()[-1]), done.stdout[-3000:]
    assert "HK_TEST_UPSTREAM_DIR" in done.stdout
