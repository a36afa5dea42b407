"""What every invoke task shares: options checked as invoke parses them, settings, one clean
exit, one way to print (docs/architecture.md, "The command line")."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, get_type_hints

from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from hello_kubeflow.cli.invoke_adapter import wrap_invoke
from hello_kubeflow.console import configure_logging
from hello_kubeflow.errors import HelloKubeflowError, SettingsError, UsageError
from hello_kubeflow.settings import Settings, load_settings

# An option that sets a setting is named by the setting's last word (`serve_port`: `--port`),
# but these.
_FLAGS = {"model_kind": "--model", "n_estimators": "--trees"}
_EXPECTED = {int: "expected a whole number", float: "expected a number, e.g. 30 or 2.5"}
# What `inv --help TASK` shows an option takes (`--wait=SECONDS`): by name, else a text option's
# name in capitals or a number's kind; a task can name its own (`task(metavars=...)`).
_METAVARS = {
    "port": "PORT",
    "output": "FILE",
    "plot": "PNG",
    "chart": "PNG",
    "render": "DIR",
    "namespaces": "NAMES",
    "namespace": "NAME",
    "model": "KIND",
    "serving": "KIND",
    "base_image": "IMAGE",
    "host": "ADDRESS",
    "pytest_args": "ARGS",
}
_KIND_METAVARS = {int: "N", float: "SECONDS"}
# What a checked option keeps of invoke's (`Argument.__init__`'s other parameters).
_KEPT = ("names", "default", "help", "positional", "optional", "incrementable", "attr_name")
# Numeric options that set no setting, and the values they take (checked as invoke parses).
_RANGES = {"count": (0, "0: one digit"), "index": (-1, "-1: a random one")}


class Result(Protocol):
    """What a task prints: text for a person, or one JSON object (`--json`)."""

    def describe(self) -> str:
        """The result as a few lines for a person."""

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON values."""


class _CheckedArgument(Argument):  # type: ignore[misc]
    """An option taking a value: a malformed one exits like any other user mistake."""

    def __init__(self, metavar: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metavar = metavar

    def set_value(self, value: Any, cast: bool = True) -> None:
        try:
            super().set_value(value, cast=cast)
        except ValueError:
            self._refuse(value, _EXPECTED[self.kind])
        lowest, meaning = _RANGES.get(str(self.name), (None, ""))
        if lowest is not None and self.value < lowest:
            self._refuse(value, f"expected a whole number >= {lowest} ({meaning})")

    def _refuse(self, value: Any, problem: str) -> None:
        flag = "--" + str(self.name).replace("_", "-")  # as typed: `--train-limit`
        raise Exit(f"error: {SettingsError([f'{flag}={value!r}: {problem}'])}", code=1)


class CheckedTask(Task):  # type: ignore[misc,type-arg]
    """An invoke task whose options taking a value are checked as invoke parses them;
    `metavars`: option -> what its help shows it takes, where the default does not fit."""

    def __init__(self, *args: Any, metavars: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.metavars = dict(metavars or {})

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        """invoke's arguments, those taking a value made `_CheckedArgument`: one declared
        `int | None = None` (or `float | None`) is a number (invoke would take it as text)."""
        arguments: list[Argument] = super().get_arguments(ignore_unknown_help)
        hints = get_type_hints(self.body)
        checked: list[Argument] = []
        for a in arguments:
            name, kind = str(a.name), a.kind
            if a.default is None:
                kind = next((k for k in (int, float) if hints.get(name) == k | None), str)
            if kind not in (str, int, float):
                checked.append(a)
                continue
            kind_metavar = name.upper() if kind is str else _KIND_METAVARS[kind]
            metavar = self.metavars.get(name) or _METAVARS.get(name) or kind_metavar
            kept = {k: getattr(a, k) for k in _KEPT}
            checked.append(_CheckedArgument(metavar=metavar, kind=kind, **kept))
        return checked


wrap_invoke()


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
    flags = {name: flag_for(name) for name in given}
    with user_errors():
        return load_settings().override(given, flags)


def flag_for(field: str) -> str:
    """The option that sets the setting `field` in messages: `--port` for `serve_port`."""
    return _FLAGS.get(field, "--" + field.split("_")[-1])


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
