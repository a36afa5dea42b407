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
        return load_settings().override(
            {k: v for k, v in overrides.items() if v not in (None, "")}
        )


# ---- issue 2: data, training, the pipeline


@task(
    help={
        "output": "YAML file to write (default: job.yaml)",
        "image": "image the steps run in (default: the pushed image by digest)",
    }
)
def compile(c: Any, output: str = "job.yaml", image: str = "") -> None:  # noqa: A001
    """Compile the training pipeline to KFP IR YAML."""
    from pathlib import Path

    from hello_kubeflow.runs import compile_pipeline

    settings = _settings()
    with _user_errors():
        path = compile_pipeline(settings, Path(output), image=image or None)
    print(f"compiled pipeline written to {path}")


@task(
    help={
        "preset": "training preset: default (best) or book (the original: 30 trees, 35k images)",
        "trees": "number of trees (default: the preset's)",
        "seed": "random seed for sampling and training (default: HK_SEED or 42)",
        "runner": "local runner: subprocess (this environment) or docker (the project image)",
        "train_limit": "use only the first N training images (0: all; for quick tries)",
        "test_limit": "use only the first N test images (0: all)",
        "json": "print the summary as one JSON object on the last line",
    }
)
def train(
    c: Any,
    preset: str = "",
    trees: int = 0,
    seed: int = -1,
    runner: str = "subprocess",
    train_limit: int = 0,
    test_limit: int = 0,
    json: bool = False,
) -> None:
    """Train the MNIST model by running the pipeline (locally with kfp.local)."""
    from hello_kubeflow.runs import RunOptions, run_local

    settings = _settings(preset=preset or None, seed=seed if seed >= 0 else None)
    options = RunOptions(
        preset=settings.preset,
        n_estimators=trees or settings.n_estimators or 0,
        seed=settings.seed,
        train_limit=train_limit,
        test_limit=test_limit,
    )
    with _user_errors():
        summary = run_local(settings, options, runner=runner)
    print(summary.to_json() if json else summary.describe())

# ---- issue 3: serving and querying

# ---- issue 4: the image

# ---- issue 5: setup, wait, status

# ---- issue 6: cluster mode
