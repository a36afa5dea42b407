"""`inv clean`: remove old local runs and their logs, keeping what is still in use.

A run or log that a record names (`latest.json`, `image.json`, `recorded/*.json`) always stays,
as do the newest N completed runs (with an evaluation report) and the newest unfinished run
changed within the hour (it may be running); a failed run goes first. A log goes with its run.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_kubeflow.errors import SettingsError
from hello_kubeflow.model import EVALUATION_FILE, RECORDED_DIR
from hello_kubeflow.pipeline.caches import tree_size

log = logging.getLogger(__name__)

DEFAULT_KEEP = 3
RUNS_DIR = "runs"
LOGS_DIR = "logs"
LOG_GLOB = "train-*.log"
MAYBE_RUNNING_SECONDS = 3600  # the newest run without a report, younger than this, stays


@dataclass(frozen=True)
class CleanResult:
    """What `clean_outputs` removed (or, in a dry run, would remove) and kept."""

    removed: tuple[Path, ...]
    kept: tuple[Path, ...]
    freed_bytes: int
    dry_run: bool
    failed: tuple[Path, ...] = ()  # the removed runs that never finished (no report)

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "removed": [str(p) for p in self.removed],
            "failed": [str(p) for p in self.failed],
            "kept": [str(p) for p in self.kept],
            "freed_bytes": self.freed_bytes,
            "dry_run": self.dry_run,
        }

    def describe(self) -> str:
        """The result as a person reads it."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"{verb} {p}" + (" (a failed run's leftovers)" if p in self.failed else "")
            for p in self.removed
        ]
        megabytes = self.freed_bytes / 1e6
        if self.removed:
            freed = "would free" if self.dry_run else "freed"
            lines.append(f"{freed} {megabytes:,.1f} MB; kept {len(self.kept)} run(s) and logs")
        else:
            lines.append(f"nothing to remove; kept {len(self.kept)} run(s) and logs")
        return "\n".join(lines)


def clean_outputs(output: Path, *, keep: int = DEFAULT_KEEP, dry_run: bool = False) -> CleanResult:
    """Remove failed runs and all but the newest `keep` completed runs, with their logs.

    Args:
        output: the output folder (`Settings.output_dir`) holding `runs/` and `logs/`.
        keep: how many of the newest completed runs to keep, besides those a record names.
        dry_run: only list what would be removed.

    Raises:
        SettingsError: `keep` is negative.
    """
    if keep < 0:
        raise SettingsError([f"--keep={keep}: expected 0 or a positive number of runs to keep"])
    in_use = _in_use(output)
    runs = _newest_first(
        [p for p in _children(output / RUNS_DIR) if p.is_dir() and not p.name.startswith("_")]
    )
    completed, kept_runs, failed = _judge_runs(runs, keep, in_use)
    logs = _newest_first([p for p in _children(output / LOGS_DIR) if p.match(LOG_GLOB)])
    kept_logs = _kept_logs(logs, runs, kept_runs, in_use)
    doomed = failed + [p for p in completed if p not in kept_runs]
    doomed += [p for p in logs if p not in kept_logs]
    freed = sum(tree_size(p) for p in doomed)
    if not dry_run:
        _remove(doomed)
    return CleanResult(tuple(doomed), tuple(kept_runs), freed, dry_run, tuple(failed))


def _judge_runs(
    runs: list[Path], keep: int, in_use: set[Path]
) -> tuple[list[Path], list[Path], list[Path]]:
    """(completed, kept, failed) among `runs`, newest first (see the module's docstring)."""
    completed = [p for p in runs if _completed(p)]
    unfinished = [p for p in runs if p not in completed]
    failed = _failed(runs, completed, unfinished, in_use)
    kept_runs = [p for i, p in enumerate(completed) if i < keep or _holds(p, in_use)]
    kept_runs += [p for p in unfinished if p not in failed]
    return completed, kept_runs, failed


def _failed(
    runs: list[Path], completed: list[Path], unfinished: list[Path], in_use: set[Path]
) -> list[Path]:
    """The unfinished runs, but the newest if it may still be running and those a record names."""
    running = runs[:1] if runs and runs[0] not in completed and _recent(runs[0]) else []
    return [p for p in unfinished if p not in running and not _holds(p, in_use)]


def _kept_logs(
    logs: list[Path], runs: list[Path], kept_runs: list[Path], in_use: set[Path]
) -> list[Path]:
    """The logs of kept runs, those a record names, and the newest log without a run."""
    newest_first = sorted(logs, key=_stamp, reverse=True)
    owned = {log_: run for run in runs if (log_ := _log_of(run, newest_first)) is not None}
    # A log goes with its run; the newest log without one may be a run's that has
    # not made its folder yet.
    starting = newest_first[0] if newest_first else None
    return [
        p
        for p in logs
        if owned.get(p) in kept_runs or p.resolve() in in_use or (p == starting and p not in owned)
    ]


def _remove(paths: list[Path]) -> None:
    """Delete each folder or file, logging it."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        log.info("removed %s", path)


def _in_use(output: Path) -> set[Path]:
    """Every path a record names (resolved): `*.json` beside the runs and in `recorded/`."""
    named: set[Path] = set()
    for record in [*output.glob("*.json"), *(output / RECORDED_DIR).glob("*.json")]:
        try:
            values = [json.loads(record.read_text())]
        except (OSError, ValueError):
            continue
        while values:
            value = values.pop()
            if isinstance(value, dict):
                values.extend(value.values())
            elif isinstance(value, list):
                values.extend(value)
            elif isinstance(value, str) and value and Path(value).is_absolute():
                named.add(Path(value).resolve())
    return named


def _recent(run: Path) -> bool:
    """The run folder or one of its steps' folders changed within `MAYBE_RUNNING_SECONDS`."""
    newest = max(p.stat().st_mtime for p in [run, *_children(run)])
    return time.time() - newest < MAYBE_RUNNING_SECONDS


def _completed(run: Path) -> bool:
    """A run finished when its evaluate step wrote the report (a failed one stops before)."""
    return next(run.rglob(EVALUATION_FILE), None) is not None


def _holds(run: Path, paths: set[Path]) -> bool:
    root = run.resolve()
    return any(path.is_relative_to(root) for path in paths)


def _stamp(path: Path) -> str:
    """The start time in a run's or log's name, as digits (`YYYYMMDDHHMMSS`, at most)."""
    return "".join(re.findall(r"\d", path.name))[:14]


def _log_of(run: Path, newest_first: list[Path]) -> Path | None:
    """A run's log: the newest log started no later than the run (the log starts first)."""
    started = _stamp(run)
    return next((p for p in newest_first if _stamp(p) <= started), None)


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _newest_first(paths: list[Path]) -> list[Path]:
    # Run folders and logs are named by their start time; the name breaks mtime ties.
    return sorted(paths, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
