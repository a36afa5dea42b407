"""What every invoke task shares: checked options, settings, one clean exit, one way to print.

`tasks.py` stays a thin shell: each task is declared with `task` (invoke's,
with options checked as they are parsed), builds its settings with
`settings_for`, makes one call into the package inside `user_errors`, and
prints the result with `emit`. A malformed number (`--port abc`) is refused
while invoke parses the command line, with the same one-paragraph error as
`--port 70000` or `HK_SERVE_PORT=abc`, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from hello_kubeflow.console import configure_logging
from hello_kubeflow.errors import HelloKubeflowError, SettingsError, UsageError
from hello_kubeflow.settings import Settings, load_settings

# The options whose name differs from the setting they set, for error messages.
FLAGS = {
    "model_kind": "--model",
    "n_estimators": "--trees",
    "serve_port": "--port",
    "serve_host": "--host",
    "serve_workers": "--workers",
    "query_url": "--url",
    "query_wait": "--wait",
    "gateway_url": "--url",
    "wait_timeout": "--timeout",
    "wait_namespaces": "--namespaces",
    "deployment_name": "--name",
    "notebook_name": "--name",
    "notebook_cpu": "--cpu",
    "notebook_memory": "--memory",
    "notebook_port": "--port",
    "notebook_timeout": "--timeout",
}
_EXPECTED = {int: "expected a whole number", float: "expected a number, e.g. 30 or 2.5"}


class Result(Protocol):
    """What a task prints: text for a person, or one JSON object (`--json`)."""

    def describe(self) -> str:
        """The result as a few lines for a person."""

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON values."""


class _CheckedArgument(Argument):  # type: ignore[misc]
    """A numeric option whose malformed value exits like any other user mistake."""

    def set_value(self, value: Any, cast: bool = True) -> None:
        try:
            super().set_value(value, cast=cast)
        except ValueError:
            flag = str(self.name).replace("_", "-")  # as typed: invoke shows `--train-limit`
            problem = f"--{flag}={value!r}: {_EXPECTED[self.kind]}"
            raise Exit(f"error: {SettingsError([problem])}", code=1) from None


class CheckedTask(Task):  # type: ignore[misc,type-arg]
    """An invoke task whose int and float options are checked as invoke parses them."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        """invoke's arguments, the numeric ones made `_CheckedArgument`."""
        arguments: list[Argument] = super().get_arguments(ignore_unknown_help)
        return [
            _CheckedArgument(
                names=a.names,
                kind=a.kind,
                default=a.default,
                help=a.help,
                positional=a.positional,
                optional=a.optional,
                incrementable=a.incrementable,
                attr_name=a.attr_name,
            )
            if a.kind in _EXPECTED
            else a
            for a in arguments
        ]


def task(*args: Any, **kwargs: Any) -> Any:
    """invoke's `@task`, making a `CheckedTask`."""
    return invoke_task(*args, klass=CheckedTask, **kwargs)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the package's errors into a one-message exit; keep tracebacks for bugs."""
    try:
        yield
    except HelloKubeflowError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None


def settings_for(**overrides: Any) -> Settings:
    """Settings from the environment and the project root's .env, command-line values on top.

    Options left at their "not given" value (None or "") change nothing.
    """
    configure_logging()
    given = {k: v for k, v in overrides.items() if v not in (None, "")}
    with user_errors():
        return load_settings().override(given, FLAGS)


def emit(result: Result, as_json: bool) -> None:
    """Print `result`: its text, or (`--json`) one JSON object on the last line."""
    print(json.dumps(result.as_dict()) if as_json else result.describe())


def refuse(unused: Mapping[str, bool], reason: str) -> None:
    """Refuse options that were given but do nothing here, saying why.

    Args:
        unused: option (e.g. `--port`) -> whether it was given.
        reason: why they do nothing, e.g. "in cluster mode the gateway serves the model".

    Raises:
        UsageError: naming the options given.
    """
    given = [flag for flag, was_given in unused.items() if was_given]
    if given:
        what = " and ".join(given)
        raise UsageError(f"{what} {'does' if len(given) == 1 else 'do'} nothing here: {reason}")
