"""What a person sees while `kfp.local` runs the pipeline (stderr), and what it keeps (a log).

kfp.local prints everything on stdout; all of it goes to the log, and stderr shows the lines
a run is followed by. A failed step's error names the step and the cause found in its log.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from hello_kubeflow.console import for_stream, plain
from hello_kubeflow.errors import PipelineError, StepFailedError

STEP_NAMES = {
    "load-data": "load MNIST",
    "train": "train model",
    "evaluate": "evaluate on test set",
}
TAIL_LINES = 40  # the end of the log, shown when a step fails

_ORCHESTRATOR = re.compile(
    r"^\d\d:\d\d:\d\d\.\d+ - \w+ - "
    r"(Executing task|Task .* finished with status|Pipeline .* finished)"
)
_EXECUTOR = re.compile(r"^\s*\[KFP Executor [^\]]* (?P<level>[A-Z]+)\]: (?P<message>.*)$")
# The executor's own bookkeeping, at INFO: in the log file only.
_EXECUTOR_NOISE = ("Looking for component", "Loading KFP component", "Got executor_input", "Wrote")
_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


def worth_showing(line: str) -> bool:
    """Whether a line of kfp.local's output belongs in the live progress."""
    text = plain(line)
    if _ORCHESTRATOR.match(text):
        return True
    found = _EXECUTOR.match(text)
    if not found:
        return False
    if found["level"] != "INFO":
        return True
    return not found["message"].startswith(_EXECUTOR_NOISE)


class _Progress(io.TextIOBase):
    """Every line to the log file; the lines worth showing to `stream`; a tail kept."""

    def __init__(self, stream: TextIO, log_file: TextIO) -> None:
        self.stream = stream
        self.log_file = log_file
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        self.stream.flush()
        self.log_file.flush()

    def _line(self, line: str) -> None:
        text = plain(line)
        self.log_file.write(text + "\n")
        if text.strip():
            self.tail.append(text)
        if worth_showing(text):
            self.stream.write(for_stream(line.strip(), self.stream) + "\n")


@contextlib.contextmanager
def captured_progress(stream: TextIO, log_path: Path) -> Iterator[deque[str]]:
    """Route stdout (where kfp.local prints) to `log_path`, the lines worth showing to `stream`.

    Yields:
        The last lines of the log, for error reports.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log_file:
        progress = _Progress(stream, log_file)
        try:
            with contextlib.redirect_stdout(progress):
                yield progress.tail
        finally:
            progress.flush()


def step_failure(message: str, tail: deque[str], log_path: Path) -> PipelineError:
    """Turn kfp.local's 'Inner task failed: X' (`message`) into the step's name and the cause.

    The cause is the last error line in `tail`, the end of the log at `log_path`.
    """
    text = plain(message)
    match = re.search(r"Inner task failed: '?([\w-]+)", text)
    if not match:
        return PipelineError(f"the local run failed: {text} (full log: {log_path})")
    step = match.group(1)
    cause = f"see its log in {log_path}"
    lines = list(tail)
    for index in range(len(lines) - 1, -1, -1):
        found = _ERROR_LINE.match(lines[index])
        if found:
            message = " ".join([found.group(2), *_continuation(lines[index + 1 :])])
            cause = f"{found.group(1).rsplit('.', 1)[-1]}: {message} (full log: {log_path})"
            break
    name = f"{step} ({STEP_NAMES[step]})" if step in STEP_NAMES else step
    return StepFailedError(name, cause)


def _continuation(lines: list[str], most: int = 10) -> list[str]:
    """The further lines of a multi-line error message, up to kfp's next own line."""
    more: list[str] = []
    for line in lines[:most]:
        if _ORCHESTRATOR.match(line) or _EXECUTOR.match(line) or set(line.strip()) <= {"-"}:
            break
        more.append(line.strip())
    return more
