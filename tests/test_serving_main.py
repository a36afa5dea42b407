"""`python -m hello_kubeflow.serving`: its options mean what the variables mean."""

from __future__ import annotations

import subprocess
import sys

from inv_support import environment_without_settings


def _serve(*options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hello_kubeflow.serving", *options]
    env = environment_without_settings()
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_zero_workers_is_refused_naming_the_option_not_taken_as_not_given() -> None:
    served = _serve("--workers", "0", "--model", "/nonexistent")

    assert served.returncode == 1
    assert "--workers=0: expected a whole number from 1 to 32" in served.stderr
    assert "Traceback" not in served.stderr


def test_a_port_outside_the_range_is_refused_naming_the_option() -> None:
    served = _serve("--port", "70000", "--model", "/nonexistent")

    assert served.returncode == 1
    assert "--port=70000: expected a port number between 1 and 65535" in served.stderr
