"""The CI workflow of every push and pull request, and the locks it installs from.

It must install exactly as the README's command 2 does (as `.ci/run` does), check
that the locks still satisfy pyproject.toml, and run the quick suite on every
Python the project supports. (actionlint runs on it in tests/test_e2e_kind.py.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
PYTHONS = ["3.11", "3.12", "3.13"]


def _readme_command(number: int) -> str:
    """The README's numbered command (`# 2. ...` then the command line)."""
    match = re.search(rf"^# {number}\. .*\n(.+)$", (REPO / "README.md").read_text(), re.MULTILINE)
    assert match, f"the README has a command {number}"
    return match.group(1).strip()


def _runs(job: dict[str, Any]) -> list[str]:
    return [str(step["run"]).strip() for step in job["steps"] if "run" in step]


def _job() -> dict[str, Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    assert set(workflow[True]) == {"push", "pull_request"}
    (job,) = workflow["jobs"].values()
    return dict(job)


def test_ci_installs_as_readme_command_2_and_runs_the_quick_suite() -> None:
    install, test = _readme_command(2).rsplit(" && ", 1)
    assert test == ".venv/bin/inv test"
    runs = _runs(_job())
    assert runs.index(install) < runs.index(".venv/bin/inv test --quick")


def test_ci_checks_the_locks_before_testing() -> None:
    runs = _runs(_job())
    check = ".venv/bin/python scripts/lock_requirements.py --check"
    assert runs.index(check) < runs.index(".venv/bin/inv test --quick")


def test_ci_runs_on_every_supported_python_with_a_cache_keyed_by_the_lock() -> None:
    job = _job()
    assert job["strategy"]["matrix"]["python"] == PYTHONS
    (setup,) = [step for step in job["steps"] if "setup-python" in step.get("uses", "")]
    assert setup["with"]["cache"] == "pip"
    assert setup["with"]["cache-dependency-path"] == "requirements-dev.lock"


def test_readme_installs_from_the_lock_and_ci_run_calls_readme_command_2() -> None:
    for number in (1, 2):
        assert " -c requirements-dev.lock " in _readme_command(number)
    assert _readme_command(2) in (REPO / ".ci" / "run").read_text().splitlines()


def test_the_lock_check_passes_and_names_a_dependency_the_lock_misses(tmp_path: Path) -> None:
    """`--check` passes on the committed locks, and names what a changed pyproject adds."""
    check = [sys.executable, "scripts/lock_requirements.py", "--check"]
    done = subprocess.run(check, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("requirements.lock", "requirements-dev.lock", "scripts/lock_requirements.py"):
        (checkout / name).write_text((REPO / name).read_text())
    (checkout / "hello_kubeflow").symlink_to(REPO / "hello_kubeflow")
    pyproject = (REPO / "pyproject.toml").read_text()
    (checkout / "pyproject.toml").write_text(
        pyproject.replace('    "pytest>=8.0",\n', '    "pytest>=8.0",\n    "no-such-dist>=1",\n')
    )
    done = subprocess.run(check, cwd=checkout, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "requirements-dev.lock: no-such-dist is not in the lock file" in done.stderr
