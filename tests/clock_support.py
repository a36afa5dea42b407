"""A virtual clock for the waits, so that no test's verdict depends on the machine's load."""

from __future__ import annotations

import queue

from hello_kubeflow.kube.feed import FeedMessage
from hello_kubeflow.kube.wait import Clock

SYNC_PATIENCE = 60.0
"""Real seconds a feed's first list may take: far above any loaded machine's."""


class VirtualClock(Clock):
    """Time that passes only when a wait pauses, and stands still until the feeds have listed.

    Until every feed's first list has arrived, a pause blocks (in real time) for the
    next message, and the clock does not move: a slow emulator cannot use up the
    wait's timeout. After that, each pause the wait asks for passes at once, after
    taking whatever the feeds already sent.
    """

    def __init__(self, feeds: int = 1) -> None:
        self.time = 0.0
        self.feeds = feeds
        self.synced: set[str] = set()

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds

    def drain(self, out: queue.Queue[FeedMessage], pause: float) -> list[FeedMessage]:
        if len(self.synced) < self.feeds:
            messages = super().drain(out, SYNC_PATIENCE)
            self.synced.update(m.scope for m in messages if m.kind == "sync")
            return messages
        messages = super().drain(out, 0.0)
        if not messages:
            self.time += pause
        return messages
