"""uvicorn's internals that serving/deadlines.py extends: still there, and touched nowhere else.

uvicorn has no public hook for an arrival deadline, JSON refusals or a draining
stop, so `deadlines.py` subclasses its httptools protocol and its Server. When an
upgrade moves a name it relies on, these tests say which one, under which version.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

PACKAGE = Path(__file__).resolve().parents[1] / "hello_kubeflow"
ADAPTER = PACKAGE / "serving" / "deadlines.py"

# Every method deadlines.py overrides or calls, with the parameters it relies on.
METHODS: list[tuple[type, str, list[str]]] = [
    (HttpToolsProtocol, "__init__", ["self", "config", "server_state", "app_state"]),
    (HttpToolsProtocol, "connection_made", ["self", "transport"]),
    (HttpToolsProtocol, "data_received", ["self", "data"]),
    (HttpToolsProtocol, "on_message_begin", ["self"]),
    (HttpToolsProtocol, "on_url", ["self", "url"]),
    (HttpToolsProtocol, "on_headers_complete", ["self"]),
    (HttpToolsProtocol, "on_message_complete", ["self"]),
    (HttpToolsProtocol, "connection_lost", ["self", "exc"]),
    (HttpToolsProtocol, "send_400_response", ["self", "msg"]),
    (HttpToolsProtocol, "shutdown", ["self"]),
    (HttpToolsProtocol, "_unset_keepalive_if_required", ["self"]),
    (FlowControl, "resume_reading", ["self"]),
    (uvicorn.Server, "shutdown", ["self", "sockets"]),
    (uvicorn.Server, "run", ["self", "sockets"]),
]
# Every instance attribute deadlines.py reads or sets.
ATTRIBUTES: list[tuple[type, str]] = [
    *(
        (HttpToolsProtocol, name)
        for name in ("url", "headers", "cycle", "transport", "loop", "flow")
    ),
    *(
        (RequestResponseCycle, name)
        for name in (
            "transport",
            "keep_alive",
            "response_started",
            "response_complete",
            "disconnected",
            "message_event",
        )
    ),
    *((uvicorn.Server, name) for name in ("server_state", "lifespan", "started", "should_exit")),
    (uvicorn.Config, "http_protocol_class"),
]
# Behaviour deadlines.py relies on, as it reads in uvicorn's source.
SOURCE: list[tuple[type, str, str, str]] = [
    (
        HttpToolsProtocol,
        "data_received",
        "except httptools.HttpParserError",
        "a parse error (and our _Refused) reaches send_400_response inside the except",
    ),
    (
        HttpToolsProtocol,
        "data_received",
        "self.send_400_response(",
        "a parse error reaches send_400_response",
    ),
    (
        RequestResponseCycle,
        "send",
        "self.transport.close()",
        "the cycle closes a Connection: close answer through its transport (_CloseByLingering)",
    ),
]


def _moved(owner: type, name: str) -> str:
    return (
        f"uvicorn {uvicorn.__version__} has moved {owner.__module__}.{owner.__qualname__}"
        f".{name}, which hello_kubeflow/serving/deadlines.py relies on: adapt deadlines.py, "
        "or keep uvicorn below this version in pyproject.toml"
    )


@pytest.mark.parametrize(
    ("owner", "name", "parameters"), METHODS, ids=[f"{o.__name__}.{n}" for o, n, _ in METHODS]
)
def test_the_methods_deadlines_extends_are_still_there(
    owner: type, name: str, parameters: list[str]
) -> None:
    method = getattr(owner, name, None)
    assert callable(method), _moved(owner, name)
    found = list(inspect.signature(method).parameters)
    assert found[: len(parameters)] == parameters, (
        f"{_moved(owner, name)} (its parameters are now {found}, were {parameters})"
    )


@pytest.mark.parametrize(
    ("owner", "name"), ATTRIBUTES, ids=[f"{o.__name__}.{n}" for o, n in ATTRIBUTES]
)
def test_the_attributes_deadlines_reads_are_still_set(owner: type, name: str) -> None:
    source = inspect.getsource(owner)
    assert f"self.{name} =" in source or f"self.{name}: " in source, _moved(owner, name)


@pytest.mark.parametrize(
    ("owner", "method", "text", "why"), SOURCE, ids=[why for *_, why in SOURCE]
)
def test_the_behaviour_deadlines_relies_on_is_still_in_uvicorn(
    owner: type, method: str, text: str, why: str
) -> None:
    source = inspect.getsource(getattr(owner, method))
    assert text in source, f"{_moved(owner, method)}: no longer `{text}` ({why})"


def test_no_other_module_touches_uvicorn_internals() -> None:
    """Only deadlines.py imports a uvicorn submodule or subclasses a uvicorn class."""
    touching = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == ADAPTER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            internal = isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "uvicorn."
            )
            subclass = isinstance(node, ast.ClassDef) and any(
                "uvicorn" in ast.unparse(base) for base in node.bases
            )
            if internal or subclass:
                touching.append(f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}")
    assert not touching, f"uvicorn internals touched outside serving/deadlines.py: {touching}"
