"""What every invoke task shares: checked options, settings, one clean exit, one way to print.

`tasks.py` stays a thin shell: each task is declared with `task` (invoke's,
with options checked as they are parsed), builds its settings with
`settings_for`, makes one call into the package inside `user_errors`, and
prints the result with `emit`. A malformed number (`--port abc`) is refused
while invoke parses the command line, with the same one-paragraph error as
`--port 70000` or `HK_SERVE_PORT=abc`, never a traceback; an option that sets
a setting is parsed by that setting's own rule (`settings_for`), so the option
and the variable always mean the same. An option declared `int | None = None`
is a number whose absence means "not given" (no sentinel value). Options that
take a value show it in `inv --help TASK` (`--wait=SECONDS`), and one given
without its value is one line naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, get_type_hints

from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.parser.context import ParserContext
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


# What `inv --help TASK` shows after an option that takes a value (`--wait=SECONDS`):
# by option name, else by its type; a task can name its own (`task(metavars=...)`).
_METAVARS = {
    "port": "PORT",
    "url": "URL",
    "output": "FILE",
    "plot": "PNG",
    "chart": "PNG",
    "render": "DIR",
    "namespaces": "NAMES",
    "namespace": "NAME",
    "name": "NAME",
    "models": "MODELS",
    "mode": "MODE",
    "model": "KIND",
    "preset": "PRESET",
    "runner": "RUNNER",
    "protocol": "PROTOCOL",
    "serving": "KIND",
    "profile": "PROFILE",
    "image": "IMAGE",
    "tag": "TAG",
    "base_image": "IMAGE",
    "host": "ADDRESS",
    "cpu": "CPU",
    "memory": "MEMORY",
    "pytest_args": "ARGS",
}
_KIND_METAVARS = {int: "N", float: "SECONDS", str: "TEXT"}
# Numeric options that set no setting, and the values they take (checked as invoke parses).
_RANGES = {"count": (0, "0: one digit"), "index": (-1, "-1: a random one")}


class _CheckedArgument(Argument):  # type: ignore[misc]
    """An option taking a value: a malformed one exits like any other user mistake."""

    def __init__(self, metavar: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metavar = metavar

    @property
    def flag(self) -> str:
        """The option as typed: invoke shows `--train-limit` for `train_limit`."""
        return "--" + str(self.name).replace("_", "-")

    def __repr__(self) -> str:
        """How invoke names the option when its value is missing: `--wait=SECONDS`."""
        return f"{self.flag}={self.metavar}"

    def set_value(self, value: Any, cast: bool = True) -> None:
        try:
            super().set_value(value, cast=cast)
        except ValueError:
            self._refuse(value, _EXPECTED[self.kind])
        lowest, meaning = _RANGES.get(str(self.name), (None, ""))
        if lowest is not None and self.value < lowest:
            self._refuse(value, f"expected a whole number >= {lowest} ({meaning})")

    def _refuse(self, value: Any, problem: str) -> None:
        raise Exit(f"error: {SettingsError([f'{self.flag}={value!r}: {problem}'])}", code=1)


def _metavar_help(context: ParserContext, flag: str) -> tuple[str, str]:
    """invoke's `help_for`, showing what a `_CheckedArgument` takes: `-w SECONDS, --wait=SECONDS`.

    invoke shows `=STRING` and `=INT` only, and nothing for a float (which then
    reads as an on/off flag); the flag names and help are otherwise invoke's.
    """
    names, text = _invoke_help_for(context, flag)
    argument = context.flags[flag]
    if isinstance(argument, _CheckedArgument):
        shown = [
            f"-{n} {argument.metavar}" if len(n) == 1 else f"--{n}={argument.metavar}"
            for n in sorted(argument.names, key=len)
        ]
        names = ", ".join(shown)
    return names, text


_invoke_help_for = ParserContext.help_for
# invoke offers no hook for how an option is shown (tests/test_tasks.py checks the result).
ParserContext.help_for = _metavar_help  # type: ignore[method-assign,assignment]


class CheckedTask(Task):  # type: ignore[misc,type-arg]
    """An invoke task whose options that take a value are checked as invoke parses them.

    Args:
        metavars: option -> what its help shows it takes, where the default
            (by name, else by type) does not fit, e.g. `{"model": "DIR"}`.
    """

    def __init__(self, *args: Any, metavars: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.metavars = dict(metavars or {})

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        """invoke's arguments, the ones taking a value made `_CheckedArgument`.

        An option declared `int | None = None` (or `float | None`) is a number
        that may be left out: invoke alone would take it as text.
        """
        arguments: list[Argument] = super().get_arguments(ignore_unknown_help)
        hints = get_type_hints(self.body)
        checked: list[Argument] = []
        for a in arguments:
            kind = a.kind
            if a.default is None:
                kind = next((k for k in (int, float) if hints.get(str(a.name)) == k | None), str)
            if kind not in _KIND_METAVARS:
                checked.append(a)
                continue
            name = str(a.name)
            metavar = self.metavars.get(name) or _METAVARS.get(name)
            checked.append(
                _CheckedArgument(
                    metavar=metavar or _KIND_METAVARS[kind],
                    names=a.names,
                    kind=kind,
                    default=a.default,
                    help=a.help,
                    positional=a.positional,
                    optional=a.optional,
                    incrementable=a.incrementable,
                    attr_name=a.attr_name,
                )
            )
        return checked


def task(*args: Any, **kwargs: Any) -> Any:
    """invoke's `@task`, making a `CheckedTask`."""
    return invoke_task(*args, klass=CheckedTask, **kwargs)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the package's errors into a one-message exit; keep tracebacks for bugs.

    A note on the error (`exc.add_note`: what the task was doing) leads the message.
    """
    try:
        yield
    except HelloKubeflowError as exc:
        doing = "".join(f"{note}: " for note in getattr(exc, "__notes__", ()))
        raise Exit(f"error: {doing}{exc}", code=1) from None
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
