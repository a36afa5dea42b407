"""The live progress of a local run: the lines a person follows, the rest in the log."""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path

import pytest

from hello_kubeflow.errors import StepFailedError
from hello_kubeflow.pipeline.runlog import captured_progress, step_failure, worth_showing

KFP_OUTPUT = [
    "06:10:43.561 - INFO - Executing task \x1b[96m'load-data'\x1b[0m",
    "    [KFP Executor 2026-11-29 06:10:44,001 INFO]: Looking for component `load_data` in x.py",
    "    [KFP Executor 2026-11-29 06:10:44,002 INFO]: Got executor_input:",
    '    {"inputs": {"parameterValues": {"mnist_dir": ""}}}',
    "    [KFP Executor 2026-11-29 06:10:44,150 INFO]: dataset: 5000 train / 10000 test images",
    "    [KFP Executor 2026-11-29 06:10:44,151 WARNING]: training on the offline subset",
    "06:10:44.179 - INFO - Task \x1b[96m'load-data'\x1b[0m finished with status SUCCESS",
    "    dataset: Dataset( name='dataset', uri='/tmp/x' )",
]


def test_progress_shows_steps_and_messages_but_not_executor_plumbing() -> None:
    shown = [line for line in KFP_OUTPUT if worth_showing(line)]
    assert len(shown) == 4
    assert "Executing task" in shown[0]
    assert "dataset: 5000 train" in shown[1]
    assert "offline subset" in shown[2]
    assert "finished with status" in shown[3]


def test_everything_goes_to_the_log_file_without_colour_codes(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_path = tmp_path / "logs" / "train.log"
    with captured_progress(stream, log_path):
        print("\n".join(KFP_OUTPUT))
    logged = log_path.read_text()
    assert '"parameterValues"' in logged
    assert "\x1b[" not in logged
    assert "parameterValues" not in stream.getvalue()
    assert "Executing task" in stream.getvalue()


def test_failure_names_the_step_its_cause_and_the_log() -> None:
    tail = deque(
        [
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in <module>',
            "hello_kubeflow.errors.DataFileError: MNIST_DIR=/x lacks train-images-idx3-ubyte",
        ]
    )
    error = step_failure(
        "Pipeline 'p' finished with status FAILURE. Inner task failed: 'load-data'.",
        tail,
        Path("/o/logs/train.log"),
    )
    assert isinstance(error, StepFailedError)
    assert str(error) == (
        "pipeline step 'load-data (load MNIST)' failed: DataFileError: MNIST_DIR=/x lacks "
        "train-images-idx3-ubyte (full log: /o/logs/train.log)"
    )


def test_failure_without_an_exception_line_points_at_the_log() -> None:
    error = step_failure("Inner task failed: 'train'.", deque(["Killed"]), Path("/o/l.log"))
    assert "'train (train model)' failed: see its log in /o/l.log" in str(error)


def test_failure_keeps_every_line_of_a_multi_line_cause() -> None:
    tail = deque(
        [
            "    hello_kubeflow.errors.SettingsError: invalid settings:",
            "      - HK_N_JOBS='x': expected a whole number",
            "    Fix the values above (see .env.example for every variable).",
            "06:10:47.189 - ERROR - Task 'train' finished with status FAILURE",
        ]
    )
    error = step_failure("Inner task failed: 'train'.", tail, Path("/o/l.log"))
    assert "SettingsError: invalid settings: - HK_N_JOBS='x': expected a whole number" in str(error)
    assert "Fix the values above" in str(error)
    assert "finished with status" not in str(error)


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_colour_codes_reach_a_terminal_only_and_never_with_no_color(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Piped to a file or another program, kfp's `\\x1b[96m` would show as `[96m`."""
    shown: dict[str, str] = {}
    for name, stream, no_color in (
        ("pipe", io.StringIO(), ""),
        ("terminal", _Terminal(), ""),
        ("NO_COLOR terminal", _Terminal(), "1"),
    ):
        monkeypatch.setenv("NO_COLOR", no_color)
        with captured_progress(stream, tmp_path / f"{name}.log"):
            print("\n".join(KFP_OUTPUT))
        shown[name] = stream.getvalue()
    assert "Executing task 'load-data'" in shown["pipe"]
    assert "\x1b[" not in shown["pipe"] + shown["NO_COLOR terminal"]
    assert "\x1b[96m'load-data'\x1b[0m" in shown["terminal"]
