"""The project root: the folder holding `tasks.py` and `pyproject.toml`, found once from the
current directory upward, as `inv` finds `tasks.py` (a wheel has no checkout beside it)."""

from __future__ import annotations

import functools
from pathlib import Path

from hello_kubeflow.errors import CheckoutError

MARKERS = ("tasks.py", "pyproject.toml")
# What each task that needs a checkout uses from it, for the message a wheel install gets.
NEEDS_CHECKOUT = {
    "build-push": "the Dockerfile and the build context",
    "notebook": "the folder mounted into the local notebook server",
}


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds every file of `MARKERS`."""
    here = start.resolve()
    folders = (here, *here.parents)
    return next((f for f in folders if all((f / m).is_file() for m in MARKERS)), None)


_chosen: list[Path] = []


def use_project_root(folder: Path) -> None:
    """Name the project root outright: `tasks.py` gives its own folder (where invoke found it)."""
    _chosen[:] = [folder.resolve()]
    project_root.cache_clear()


@functools.cache
def project_root() -> Path | None:
    """The root named by `use_project_root`, else the checkout around the cwd (None: none)."""
    return _chosen[0] if _chosen else find_root(Path.cwd())


def require_checkout(root: Path | None, task: str) -> Path:
    """`root`, or a `CheckoutError` saying what `task` needs a checkout for.

    Raises:
        CheckoutError: `root` is None (the package is used outside a checkout).
    """
    if root is not None:
        return root
    raise CheckoutError(
        f"inv {task} needs the hello-kubeflow checkout ({NEEDS_CHECKOUT[task]}), and "
        f"{Path.cwd()} is not inside one (no folder above it holds "
        f"{' and '.join(MARKERS)}): run it from a `git clone` of the project; an "
        "installed package alone runs every other task"
    )
