"""`inv setup`: get the local workflow ready, or install Kubeflow on the cluster (cluster mode)."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from hello_kubeflow.data.mnist import ensure_mnist, mnist_folder
from hello_kubeflow.errors import DockerUnavailableError, PrerequisiteError
from hello_kubeflow.images.engine import connect
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

PYTHON_DEPENDENCIES = {
    # import name: distribution name
    "kfp": "kfp",
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "orjson": "orjson",
    "matplotlib": "matplotlib",
    "PIL": "pillow",
    "requests": "requests",
    "tenacity": "tenacity",
    "yaml": "PyYAML",
    "docker": "docker",
    "kubernetes": "kubernetes",
}
DOCKER_PROBE_TIMEOUT = 5.0
DOCKER_ENABLES = (
    "`inv build-push` (the pipeline image), `inv train --runner docker` and `inv serve --container`"
)


@dataclass(frozen=True)
class SetupReport:
    """What `inv setup` found and did, and what to run next."""

    mode: str
    lines: tuple[str, ...]
    next_command: str

    def describe(self) -> str:
        return "\n".join([*self.lines, f"Next: {self.next_command}"])

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "lines": list(self.lines), "next": self.next_command}


def setup(settings: Settings, *, dry_run: bool = False, render: Path | None = None) -> SetupReport:
    """Prepare the workflow for `settings.mode`: local (default) or cluster.

    Args:
        dry_run: say what would be done; change and fetch nothing.
        render: write the cluster profile's rendered manifests into this folder
            (for `HK_MANIFESTS_DIR`), instead of installing.

    Raises:
        PrerequisiteError: something needed is missing, e.g. a Python dependency (with its fix).
        ApplyError, PodFailedError, WaitTimeoutError: cluster mode, see `install`.
        DataError: local mode, MNIST could not be fetched or verified.
    """
    if render is not None:
        from hello_kubeflow.install.render import render_manifests  # kubernetes: cluster only

        written = tuple(f"wrote {path}" for path in render_manifests(settings, render))
        return SetupReport(
            "cluster", written, f"HK_MANIFESTS_DIR={render} inv setup --mode cluster"
        )
    if settings.mode == "cluster":
        from hello_kubeflow.install.install import install  # kubernetes: cluster only

        lines = install(settings, dry_run=dry_run)
        follow = (
            "inv setup --mode cluster"
            if dry_run
            else "inv build-push, then inv train --mode cluster"
        )
        return SetupReport("cluster", tuple(lines), follow)
    # local: the Python dependencies, Docker (optional), MNIST made ready
    lines = [_python_dependencies(), _docker()]
    where = mnist_folder(settings.mnist_dir, settings.cache_dir)
    if dry_run:
        action = "verify" if settings.mnist_dir else "verify, or fetch and verify,"
        lines.append(f"[--]   MNIST: would {action} the four IDX files in {where}")
        return SetupReport("local", tuple(lines), "inv setup (without --dry-run)")
    log.info("making MNIST ready in %s", where)
    ready, is_subset = ensure_mnist(settings)
    if is_subset:
        lines.append(
            f"[warn] MNIST: only the 5,000-digit offline subset, not full MNIST ({ready}); "
            "accuracy on it is not comparable. Set MNIST_DIR to a folder of the four MNIST "
            "files, or run `inv setup` again online"
        )
    else:
        lines.append(f"[ok]   MNIST: {ready}")
    return SetupReport(
        "local", tuple(lines), "inv train (then inv serve and inv query; or inv demo)"
    )


def _python_dependencies() -> str:
    missing = []
    for module, distribution in PYTHON_DEPENDENCIES.items():
        try:
            importlib.import_module(module)
        except Exception as exc:  # an installed but broken package is as missing
            missing.append(f"{distribution} ({type(exc).__name__}: {exc})")
    if missing:
        raise PrerequisiteError(
            "Python dependencies cannot be imported: " + "; ".join(missing) + ". "
            "Install the project into this environment: pip install -e '.[dev]'"
        )
    versions = f"kfp {metadata.version('kfp')}, scikit-learn {metadata.version('scikit-learn')}"
    return f"[ok]   Python: {len(PYTHON_DEPENDENCIES)} dependencies import ({versions})"


def _docker() -> str:
    try:
        engine = connect(DOCKER_PROBE_TIMEOUT)
        version = str(engine.version().get("Version", "?"))
        engine.close()
    except DockerUnavailableError as exc:
        return f"[--]   Docker: not available (optional; it enables {DOCKER_ENABLES}): {exc}"
    return f"[ok]   Docker: engine {version}; enables {DOCKER_ENABLES}"
