"""What reaches a person on stderr: log records, without colour codes off a terminal."""

from __future__ import annotations

import subprocess
import sys

LOG_COLOURED = (
    "import logging\n"
    "from hello_kubeflow.console import configure_logging\n"
    "configure_logging()\n"
    "logging.getLogger('docker').info('Step 2/9 : \\x1b[96mRUN pip install\\x1b[0m')\n"
)


def test_log_records_lose_colour_codes_when_stderr_is_not_a_terminal() -> None:
    """Docker's build output, logged line by line, piped: no `[96m` in a file or CI log."""
    done = subprocess.run(
        [sys.executable, "-c", LOG_COLOURED], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "Step 2/9 : RUN pip install\n"
