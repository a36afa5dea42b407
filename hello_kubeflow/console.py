"""How progress reaches a person: log records on stderr, warnings marked as such."""

from __future__ import annotations

import logging
import sys


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
