"""`inv clean`: remove old local runs and their logs, keeping what is still in use.

Every local run leaves a folder under `<output_dir>/runs` (dataset, model,
report) and a log under `<output_dir>/logs`. Cleaning keeps the newest N runs,
the run whose model `latest.json` names (what `inv serve` loads), and every
record (`latest.json`, `image.json`); everything else under those two folders
that a run made goes.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_kubeflow.errors import SettingsError
from hello_kubeflow.model.artifact import LATEST_FILE
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_KEEP = 3
RUNS_DIR = "runs"
LOGS_DIR = "logs"
LOG_GLOB = "train-*.log"


@dataclass(frozen=True)
class CleanResult:
    """What `clean_outputs` removed (or, in a dry run, would remove) and kept."""

    removed: tuple[Path, ...]
    kept: tuple[Path, ...]
    freed_bytes: int
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "removed": [str(p) for p in self.removed],
            "kept": [str(p) for p in self.kept],
            "freed_bytes": self.freed_bytes,
            "dry_run": self.dry_run,
        }

    def describe(self) -> str:
        """The result as a person reads it."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb} {p}" for p in self.removed]
        megabytes = self.freed_bytes / 1e6
        if self.removed:
            freed = "would free" if self.dry_run else "freed"
            lines.append(f"{freed} {megabytes:,.1f} MB; kept {len(self.kept)} run(s) and logs")
        else:
            lines.append(f"nothing to remove; kept {len(self.kept)} run(s) and logs")
        return "\n".join(lines)


def clean_outputs(
    settings: Settings, *, keep: int = DEFAULT_KEEP, dry_run: bool = False
) -> CleanResult:
    """Remove all but the newest `keep` runs and logs, never the latest model's run.

    Args:
        settings: `output_dir` says where the runs are.
        keep: how many of the newest runs (and logs) to keep, besides the one
            `latest.json` names.
        dry_run: only list what would be removed.

    Returns:
        What was removed (or would be), what was kept, and the bytes freed.

    Raises:
        SettingsError: `keep` is negative.
    """
    if keep < 0:
        raise SettingsError([f"--keep={keep}: expected 0 or a positive number of runs to keep"])
    output = settings.output_dir
    in_use = _in_use(output)
    runs = _newest_first(
        [p for p in _children(output / RUNS_DIR) if p.is_dir() and not p.name.startswith("_")]
    )
    logs = _newest_first([p for p in _children(output / LOGS_DIR) if p.match(LOG_GLOB)])
    kept_runs = [p for i, p in enumerate(runs) if i < keep or _holds(p, in_use)]
    kept_logs = [p for i, p in enumerate(logs) if i < keep or p.resolve() in in_use]
    doomed = [p for p in runs if p not in kept_runs] + [p for p in logs if p not in kept_logs]
    freed = sum(_size(p) for p in doomed)
    if not dry_run:
        for path in doomed:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            log.info("removed %s", path)
    return CleanResult(tuple(doomed), tuple(kept_runs), freed, dry_run)


def _in_use(output: Path) -> set[Path]:
    """The model and log `latest.json` names (resolved), if it names any."""
    try:
        record = json.loads((output / LATEST_FILE).read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(record, dict):
        return set()
    return {
        Path(str(record[key])).resolve()
        for key in ("model_path", "log_path")
        if isinstance(record.get(key), str) and record[key]
    }


def _holds(run: Path, paths: set[Path]) -> bool:
    root = run.resolve()
    return any(path.is_relative_to(root) for path in paths)


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _newest_first(paths: list[Path]) -> list[Path]:
    # Run folders and logs are named by their start time; the name breaks mtime ties.
    return sorted(paths, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
