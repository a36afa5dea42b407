"""`requirements.lock` (the exact pins the build installs) and the labels recording it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from hello_kubeflow.errors import ImageError

LOCK_FILE = "requirements.lock"
LABEL_PREFIX = "io.hello-kubeflow"
VERSIONS_LABEL = f"{LABEL_PREFIX}.requirements"
LOCK_SHA_LABEL = f"{LABEL_PREFIX}.requirements.sha256"
# The libraries a model artifact is sensitive to get a label each, for `docker inspect`.
MODEL_LIBRARIES = ("scikit-learn", "numpy", "joblib", "onnx", "onnxruntime", "kfp")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)\s*(?:;\s*(.+))?$")
# The environment markers of the image's Python, for reading the development lock as the
# image would install it (scripts/lock_requirements.py resolves the image lock for it).
IMAGE_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
_REFRESH = "refresh it with `.venv/bin/python scripts/lock_requirements.py` (docs/image.md)"


def normalize(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503): `Scikit_Learn` -> `scikit-learn`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path, markers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The pinned versions in a lock file, by normalized name.

    A pin with an environment marker (the universal development lock's) counts only
    where it holds: here, or in the environment `markers` describe (`IMAGE_MARKERS`).

    Raises:
        ImageError: the file is missing, or a line is not `name==version [; marker]`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImageError(
            f"cannot read the lock file {path} ({exc.strerror or exc}): {_REFRESH}"
        ) from None
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise ImageError(f"{path} line {number} ({line!r}) is not `name==version`: {_REFRESH}")
        if match.group(3) is None or _applies(match.group(3), markers):
            pins[normalize(match.group(1))] = match.group(2)
    if not pins:
        raise ImageError(f"{path} pins nothing: {_REFRESH}")
    return pins


def _applies(marker: str, environment: Mapping[str, str] | None) -> bool:
    from packaging.markers import Marker  # only the development lock has markers

    return Marker(marker).evaluate(dict(environment) if environment else None)


def unlocked_requirements(pins: Mapping[str, str], requirements: Iterable[str]) -> list[str]:
    """One line per PEP 508 requirement the `read_lock` pins miss or fall outside of."""
    from packaging.requirements import Requirement  # a dependency of pip's tools and pytest

    problems = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = pins.get(normalize(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not in the lock file: {_REFRESH}")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(
                f"{requirement.name}=={pinned} in the lock file is outside {text!r}: {_REFRESH}"
            )
    return problems


def version_labels(path: Path) -> dict[str, str]:
    """Image labels recording the lock: every pin, its SHA-256, and the model's libraries.

    Raises:
        ImageError: as `read_lock`.
    """
    pins = read_lock(path)
    labels = {
        VERSIONS_LABEL: ",".join(f"{name}=={version}" for name, version in sorted(pins.items())),
        LOCK_SHA_LABEL: hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    for library in MODEL_LIBRARIES:
        if library in pins:
            labels[f"{LABEL_PREFIX}.version.{library}"] = pins[library]
    return labels
