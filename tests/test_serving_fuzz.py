"""Schema-driven fuzzing of the model server: never a 5xx, every answer as /openapi.json says.

schemathesis generates requests from the served OpenAPI document, valid ones and
invalid ones (its positive and negative modes), sends them to a real server over
HTTP, and checks every answer: no 5xx, a status the document lists for that
operation, a body that validates against the listed schema, the listed content
type, and 405 with Allow for methods the document does not list.

Valid requests must be accepted where JSON Schema can say what valid is: Seldon
JSON bodies of `ndarray` or `jsonData` rows, feedback, every GET. It cannot say it
for a `json=` form field or query argument (a string holding a message), nor for
a tensor (its value count must be the product of its shape), so there a 400 is
taken, if the document lists it. Invalid requests need not all be refused: like
Seldon's wrapper, the server ignores what it does not use (unknown fields, tags
that are not an object).

Below HTTP, hypothesis combines request lines, line ends, headers and bodies that
are valid or not, sent as raw bytes: every refusal is JSON, and the server keeps
serving.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from serving_support import call, make_tiny_model

from hello_kubeflow.serving.openapi import openapi_document
from hello_kubeflow.serving.server import RunningServer, running_server
from hello_kubeflow.settings import Settings

LIMIT = 200_000
EXAMPLES = 40  # per operation; about 20 s for all of them on an idle core
DOCUMENT = openapi_document("mnist-classifier", LIMIT)
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def fuzzed_server(
    mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    model_dir = make_tiny_model(mnist_dir, tmp_path_factory.mktemp("model"))
    with running_server(Settings(serve_port=0, max_body_bytes=LIMIT), model_dir) as running:
        yield running


def test_the_fuzzed_document_is_the_one_served(fuzzed_server: RunningServer) -> None:
    assert call(fuzzed_server.url + "/openapi.json") == (200, DOCUMENT)


def _validity_is_in_the_schema(case: Any) -> bool:
    """True when a schema-valid request of this case must be accepted (see the module)."""
    if case.media_type == "application/x-www-form-urlencoded" or (case.query or {}).get("json"):
        return False
    # The body limit (HK_MAX_BODY_BYTES) is a size, which JSON Schema cannot state: a
    # valid body near or over it is answered 413, as the document lists. The margin
    # covers the client's own JSON spacing, which may differ from `json.dumps`.
    if len(json.dumps(case.body, default=str).encode()) > LIMIT * 0.9:
        return False
    body = case.body if isinstance(case.body, dict) else {}
    data = body.get("data")
    return "inputs" not in body and not (isinstance(data, dict) and "tensor" in data)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_answer_is_a_server_error_or_outside_the_document(
    case: Any, fuzzed_server: RunningServer
) -> None:
    excluded = [negative_data_rejection]
    if not _validity_is_in_the_schema(case):
        excluded.append(positive_data_acceptance)
    case.call_and_validate(base_url=fuzzed_server.url, excluded_checks=excluded)


_METHODS = st.sampled_from([b"GET", b"POST", b"PUT", b"FOO", b"get", b"", b"G\x00T"])
_PATHS = st.sampled_from([b"/health/ping", b"/api/v1.0/predictions", b"/v2/models/x/infer", b""])
_VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.x", b""])
_ENDS = st.sampled_from([b"\r\n", b"\n", b"\r", b" "])
_HEADERS = st.lists(
    st.sampled_from(
        [
            b"Host: x",
            b"Content-Length: 2",
            b"Content-Length: -1",
            b"Content-Length: 99999999999999999999",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip",
            b"Expect: 100-continue",
            b"X-Folded: a\r\n b",
            b"Bad Header: 1",
            b": empty name",
        ]
    ),
    max_size=4,
)


@pytest.mark.slow
@given(
    method=_METHODS,
    path=_PATHS,
    version=_VERSIONS,
    end=_ENDS,
    headers=_HEADERS,
    body=st.sampled_from([b"", b"{}", b"zz\r\n", b"2\r\n{}\r\n0\r\n\r\n", b"\x00\xff"]),
)
@settings(max_examples=EXAMPLES * 5, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_refusal_of_a_malformed_request_is_json(
    fuzzed_server: RunningServer,
    method: bytes,
    path: bytes,
    version: bytes,
    end: bytes,
    headers: list[bytes],
    body: bytes,
) -> None:
    """Whatever bytes arrive, an error answer is JSON (never uvicorn's plain text)."""
    head = b" ".join([method, path, version]) + end + b"".join(h + end for h in headers) + end
    with socket.create_connection(("127.0.0.1", fuzzed_server.port), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)  # the server answers what it has, then closes
        answer = b""
        with suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    if status_line and int(status_line.split(b" ")[1]) >= 400:
        assert b"content-type: application/json" in rest.lower().partition(b"\r\n\r\n")[0]
        json.loads(rest.partition(b"\r\n\r\n")[2])
    assert call(fuzzed_server.url + "/health/ping") == (200, "pong")
