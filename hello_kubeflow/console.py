"""How progress reaches a person: stderr, colour codes only on a terminal without `NO_COLOR`
(https://no-color.org); SIGTERM stops a long-running task as Ctrl-C does."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

# Terminal escape codes: colours (`\x1b[96m`) and the cursor moves some tools add.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """`text` without terminal colour codes."""
    return _ANSI.sub("", text)


def colour_allowed(stream: TextIO) -> bool:
    """Whether `stream` may show colours: a terminal, and `NO_COLOR` unset or empty."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def for_stream(text: str, stream: TextIO) -> str:
    """`text` as `stream` shows it: its colour codes kept only where colours are allowed."""
    return text if colour_allowed(stream) else plain(text)


class _Formatter(logging.Formatter):
    """Plain messages (colour codes only where allowed); warnings and errors say what they are."""

    def format(self, record: logging.LogRecord) -> str:
        message = for_stream(super().format(record), sys.stderr)
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
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
