"""Running `inv` as a user does: a subprocess in the project root, with an environment we choose.

`run_inv` runs a task to its end and captures its output; `start_inv` starts one
(a server) and leaves it running. Both use this interpreter's invoke, so the
tasks see the same installed package as the tests. `environment_without_settings`
is this process's environment without any variable the project reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from hello_kubeflow.settings import VARIABLES

REPO = Path(__file__).resolve().parents[1]
INV = (sys.executable, "-m", "invoke")


def run_inv(
    *args: str, env: Mapping[str, str], timeout: float = 120, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """Run `inv ARGS` in `cwd` with exactly `env`, its stdout and stderr captured as text."""
    return subprocess.run(
        [*INV, *args], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )


def start_inv(*args: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start `inv ARGS` in the project root with exactly `env`; read its pipes as text."""
    return subprocess.Popen(
        [*INV, *args],
        cwd=REPO,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def environment_without_settings() -> dict[str, str]:
    """This process's environment without any variable the project reads."""
    read = {variable.env for variable in VARIABLES}
    return {name: value for name, value in os.environ.items() if name not in read}
