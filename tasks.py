"""The command line: `inv --list` shows every task. Each task is a thin shell.

A task loads settings once, calls one function of the package and turns the
package's own error (`HelloKubeflowError`) into a clean exit: the message on
stderr, exit code 1. Progress goes to stderr through `logging`; results go to
stdout (with `--json`, one JSON object as the last line).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from invoke import Exit, task

from hello_kubeflow.errors import HelloKubeflowError
from hello_kubeflow.settings import Settings, load_settings


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the package's errors into a one-message exit; keep tracebacks for bugs."""
    try:
        yield
    except HelloKubeflowError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env, with command-line values on top."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    with _user_errors():
        settings = load_settings()
    changes = {k: v for k, v in overrides.items() if v not in (None, "")}
    return settings.replace(**changes) if changes else settings


# ---- issue 2: data, training, the pipeline

# ---- issue 3: serving and querying

# ---- issue 4: the image

# ---- issue 5: setup, wait, status

# ---- issue 6: cluster mode
