"""How progress reaches a person, and how a person (or a supervisor) stops it.

Log records go to stderr, warnings and errors marked as such; `sigterm_interrupts`
makes SIGTERM stop a long-running task (the model server, a local container) as
Ctrl-C does.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class _Formatter(logging.Formatter):
    """Plain messages; warnings and errors say what they are."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return message


def configure_logging(level: int = logging.INFO) -> None:
    """Send the package's progress to stderr, once per process."""
    root = logging.getLogger()
    if any(getattr(h, "_hello_kubeflow", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    handler._hello_kubeflow = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (kill, a supervisor) raises KeyboardInterrupt in the block, as Ctrl-C does."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
