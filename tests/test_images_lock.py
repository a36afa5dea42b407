"""requirements.lock: in step with pyproject.toml, and recorded in the image's labels."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hello_kubeflow.errors import ImageError
from hello_kubeflow.images.lock import (
    IMAGE_MARKERS,
    LOCK_SHA_LABEL,
    VERSIONS_LABEL,
    read_lock,
    unlocked_requirements,
    version_labels,
)
from hello_kubeflow.images.plan import plan_build
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"


def _requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(project["project"]["dependencies"]) + list(project["build-system"]["requires"])


def test_the_lock_pins_a_version_inside_every_range_of_pyproject() -> None:
    assert unlocked_requirements(read_lock(LOCK), _requirements()) == []


def test_a_dependency_missing_from_the_lock_or_outside_its_range_is_named() -> None:
    problems = unlocked_requirements(
        {"numpy": "1.20.0"}, ["numpy>=1.26", "scikit-learn>=1.4", "uvloop; sys_platform == 'x'"]
    )
    assert problems[0].startswith("numpy==1.20.0 in the lock file is outside 'numpy>=1.26'")
    assert problems[1].startswith("scikit-learn is not in the lock file")
    assert len(problems) == 2  # uvloop's marker does not apply here
    assert all("scripts/lock_requirements.py" in problem for problem in problems)


def test_lock_check_script_agrees(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "scripts/lock_requirements.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_line_that_is_not_a_pin_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("# header\nnumpy==2.0.0\nscikit-learn>=1.4\n")
    with pytest.raises(ImageError, match=r"line 3 \('scikit-learn>=1.4'\) is not `name==version`"):
        read_lock(lock)


def test_labels_record_every_pin_and_the_model_libraries() -> None:
    pins = read_lock(LOCK)
    labels = version_labels(LOCK)
    assert labels["io.hello-kubeflow.version.scikit-learn"] == pins["scikit-learn"]
    assert labels["io.hello-kubeflow.version.numpy"] == pins["numpy"]
    assert f"onnxruntime=={pins['onnxruntime']}" in labels[VERSIONS_LABEL].split(",")
    assert len(labels[LOCK_SHA_LABEL]) == 64


def test_the_build_plan_carries_the_labels_and_says_what_is_locked(tmp_path: Path) -> None:
    plan = plan_build(Settings(output_dir=tmp_path), push=False, tag="i13", context=REPO)
    assert plan.labels == version_labels(LOCK)
    assert f"scikit-learn {read_lock(LOCK)['scikit-learn']}" in plan.describe()


def test_a_pin_counts_only_where_its_environment_marker_holds(tmp_path: Path) -> None:
    """The universal development lock: numpy pinned per Python, colorama only on Windows."""
    lock = tmp_path / "requirements-dev.lock"
    lock.write_text(
        f"numpy==2.4.6 ; python_full_version < '{sys.version_info[0]}.{sys.version_info[1] + 1}'\n"
        f"numpy==9.9.9 ; python_full_version >= '{sys.version_info[0]}.{sys.version_info[1] + 1}'\n"
        "colorama==0.4.6 ; sys_platform == 'no-such-platform'\n"
    )
    assert read_lock(lock) == {"numpy": "2.4.6"}


def test_the_development_lock_pins_the_image_lock_s_versions() -> None:
    """A model trained in the development venv is served by the same libraries in the image."""
    image = read_lock(LOCK)
    dev = read_lock(REPO / "requirements-dev.lock", IMAGE_MARKERS)  # read as the image's Python
    assert {name: dev.get(name) for name in image} == image


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_the_development_lock_covers_pyproject_on_every_supported_python(python: str) -> None:
    """What `pip install -c requirements-dev.lock -e '.[dev]'` pins on each CI Python."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    markers = {**IMAGE_MARKERS, "python_version": python, "python_full_version": f"{python}.0"}
    pins = read_lock(REPO / "requirements-dev.lock", markers)

    assert unlocked_requirements(pins, wanted) == []
