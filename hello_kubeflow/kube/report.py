"""The state of the pods at one moment, as a person reads it: counts, progress line, table."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from hello_kubeflow.kube.pods import PodState

PROGRESS_LIMIT = 8  # not-ready pods named in one progress message (the rest are counted)
WHY_WIDTH = 110


def format_seconds(seconds: float) -> str:
    """`75.2` -> `1m15s`, `3.4` -> `3.4s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


@dataclass(frozen=True)
class Snapshot:
    """Every pod (`states`, those that no longer count too) in `namespaces` (empty: all)."""

    states: tuple[PodState, ...]
    namespaces: tuple[str, ...] = ()

    @property
    def counted(self) -> list[PodState]:
        """The pods that decide the wait (not those replaced or superseded)."""
        return [s for s in self.states if s.counted]

    @property
    def ready(self) -> int:
        """How many counted pods are ready."""
        return sum(1 for s in self.counted if s.ready)

    @property
    def total(self) -> int:
        """How many pods count."""
        return len(self.counted)

    def not_ready(self) -> list[PodState]:
        """Counted pods not ready, broken ones first, then by namespace and name."""
        pending = [s for s in self.counted if not s.ready]
        return sorted(pending, key=lambda s: (not s.fatal, s.namespace, s.name))

    def fatal(self) -> PodState | None:
        """The first pod in a state that will not heal, if any."""
        return next((s for s in self.not_ready() if s.fatal), None)

    def per_namespace(self) -> dict[str, tuple[int, int]]:
        """{namespace: (ready, total)}, including asked-for namespaces with no pods yet."""
        counts: dict[str, list[int]] = {ns: [0, 0] for ns in self.namespaces}
        for s in self.counted:
            entry = counts.setdefault(s.namespace, [0, 0])
            entry[0] += int(s.ready)
            entry[1] += 1
        return {ns: (r, t) for ns, (r, t) in sorted(counts.items())}

    def complete(self, require_pods: bool = False) -> bool:
        """Every counted pod ready (and, if `require_pods`, each namespace has one)."""
        if any(not s.ready for s in self.counted):
            return False
        if not require_pods:
            return True
        return self.total > 0 and all(t > 0 for _, t in self.per_namespace().values())

    def counts_text(self) -> str:
        """`12/15 pods ready (kubeflow 10/12, seldon-system 2/3)`."""
        spaces = ", ".join(f"{ns} {r}/{t}" for ns, (r, t) in self.per_namespace().items())
        where = f" ({spaces})" if spaces else ""
        return f"{self.ready}/{self.total} pods ready{where}"

    def progress_text(self, elapsed: float) -> str:
        """Counts, elapsed time and the first not-ready pods with their reason."""
        lines = [f"{self.counts_text()} after {format_seconds(elapsed)}"]
        pending = self.not_ready()
        for s in pending[:PROGRESS_LIMIT]:
            lines.append(f"  {s.namespace}/{s.name}: {_why(s)}")
        if len(pending) > PROGRESS_LIMIT:
            lines.append(f"  ... and {len(pending) - PROGRESS_LIMIT} more not ready")
        return "\n".join(lines)

    def describe(self) -> str:
        """A table of what is not ready and why (or a line saying all is ready)."""
        pending = self.not_ready()
        if not pending:
            return f"{self.counts_text()}: nothing is waiting."
        rows = [("NAMESPACE", "POD", "STATUS", "RESTARTS", "WHY")]
        for s in pending:
            why = s.message if not s.container else f"[{s.container}] {s.message}"
            rows.append((s.namespace, s.name, s.reason, str(s.restarts), _clip(why.strip())))
        widths = [*(max(len(row[i]) for row in rows) for i in range(4)), 0]  # WHY: unpadded
        lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
        return "\n".join([self.counts_text(), *(line.rstrip() for line in lines)])

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: counts per namespace and the pods not ready."""
        return {
            "ready": self.ready,
            "total": self.total,
            "namespaces": {
                ns: {"ready": r, "total": t} for ns, (r, t) in self.per_namespace().items()
            },
            "not_ready": [
                {
                    "namespace": s.namespace,
                    "pod": s.name,
                    "reason": s.reason,
                    "message": s.message,
                    "container": s.container,
                    "restarts": s.restarts,
                    "fatal": s.fatal,
                }
                for s in self.not_ready()
            ],
        }


def _why(state: PodState) -> str:
    detail = f" ({_clip(state.message)})" if state.message else ""
    return f"{state.reason}{detail}"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= WHY_WIDTH else text[: WHY_WIDTH - 3] + "..."


@dataclass
class Progress:
    """Logs the snapshot when it changed (at most every `interval`) or every `heartbeat`."""

    log: logging.Logger
    interval: float
    heartbeat: float
    _last_time: float = -float("inf")
    _last_seen: object = None

    def update(self, snapshot: Snapshot, elapsed: float, now: float | None = None) -> None:
        """Log the snapshot if it is time to."""
        now = time.monotonic() if now is None else now
        seen = (
            snapshot.ready,
            snapshot.total,
            tuple((s.key, s.reason) for s in snapshot.not_ready()),
        )
        since = now - self._last_time
        if (seen != self._last_seen and since >= self.interval) or since >= self.heartbeat:
            self.log.info("%s", snapshot.progress_text(elapsed))
            self._last_time, self._last_seen = now, seen
