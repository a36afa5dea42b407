"""The one place the project reaches into invoke's parser past its documented API.

invoke has no hook for how `inv --help` shows an option's value (`=STRING`, `=INT`,
nothing for a float), nor for the message of an option left without its value: this
wraps `ParserContext.help_for` and `ParseMachine.complete_flag` (reading its `flag`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import invoke
from invoke.exceptions import Exit
from invoke.parser.context import ParserContext
from invoke.parser.parser import ParseMachine


def wrapped(owner: type, name: str) -> Callable[..., Any]:
    """invoke's method `owner.name`, else an ImportError naming the invoke version and it."""
    method: Callable[..., Any] | None = getattr(owner, name, None)
    if not callable(method):
        raise ImportError(
            f"invoke {invoke.__version__} has no {owner.__name__}.{name}, which "
            "hello_kubeflow/cli/invoke_adapter.py wraps: install invoke>=2.2,<4 as "
            "pyproject.toml asks (pip install -e .), or update the adapter"
        )
    return method


_help_for = wrapped(ParserContext, "help_for")
_complete_flag = wrapped(ParseMachine, "complete_flag")


def _help_for_showing_what_it_takes(context: ParserContext, flag: str) -> tuple[str, str]:
    """invoke's `help_for`, an option taking a value shown with it: `-w SECONDS, --wait=SECONDS`."""
    names, text = _help_for(context, flag)
    argument = context.flags[flag]
    metavar = getattr(argument, "metavar", None)
    if metavar:
        ordered = sorted(argument.names, key=len)
        names = ", ".join(f"-{n} {metavar}" if len(n) == 1 else f"--{n}={metavar}" for n in ordered)
    return names, text


def _complete_flag_naming_it(machine: ParseMachine) -> None:
    """invoke's check that the option before got its value, missing it one line saying how."""
    argument: Any = machine.flag
    metavar = getattr(argument, "metavar", None)
    if metavar and argument.raw_value is None:
        flag = f"--{max(argument.names, key=len)}"
        raise Exit(f"error: {flag} needs a value: give it as {flag}={metavar}", code=1)
    _complete_flag(machine)


def wrap_invoke() -> None:
    """Show and check the options that carry a `metavar` (`cli/options.py`) our way."""
    ParserContext.help_for = _help_for_showing_what_it_takes  # type: ignore[method-assign,assignment]
    ParseMachine.complete_flag = _complete_flag_naming_it  # type: ignore[method-assign,assignment]
