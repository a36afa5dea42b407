"""Reading the engine's build and push streams: every chunk checked, errors explained.

The chunks are what Docker Engine 20.10 sends (recorded from real builds and
pushes against `docker-registry`): errors arrive inside an HTTP 200 stream.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hello_kubeflow.errors import (
    BuildError,
    PushError,
    RegistryAuthError,
    RegistryUnavailableError,
)
from hello_kubeflow.images.build import follow_build
from hello_kubeflow.images.push import classify_push_error, follow_push

IMAGE = "127.0.0.1:5000/hello-kubeflow:abc1234"
DIGEST = "sha256:8ef783b722059a816f16b76c02246eb397b5d7cd6367129e48d1725acb004d82"
PUSHED: list[dict[str, Any]] = [
    {"status": "The push refers to repository [127.0.0.1:5000/hello-kubeflow]"},
    {"status": "Preparing", "progressDetail": {}, "id": "b6bdb565902f"},
    {"status": "Pushing", "progressDetail": {"current": 512, "total": 3}, "id": "b6bdb565902f"},
    {"status": "Pushed", "progressDetail": {}, "id": "b6bdb565902f"},
    {"status": f"abc1234: digest: {DIGEST} size: 523"},
    {"progressDetail": {}, "aux": {"Tag": "abc1234", "Digest": DIGEST, "Size": 523}},
]


def test_push_stream_gives_the_digest() -> None:
    assert follow_push(PUSHED, IMAGE) == DIGEST


def test_error_chunk_after_progress_fails_the_push() -> None:
    failing: list[dict[str, Any]] = [
        *PUSHED[:4],
        {
            "errorDetail": {
                "message": "received unexpected HTTP status: 500 Internal Server Error"
            },
            "error": "received unexpected HTTP status: 500 Internal Server Error",
        },
    ]
    with pytest.raises(RegistryUnavailableError, match="500 Internal Server Error"):
        follow_push(failing, IMAGE)


def test_stream_cut_short_without_digest_is_an_error() -> None:
    with pytest.raises(PushError, match="without a digest"):
        follow_push(PUSHED[:4], IMAGE)


def test_push_progress_is_logged_once_per_layer_state(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hello_kubeflow.images.push"):
        follow_push(PUSHED, IMAGE)
    assert caplog.messages.count("  b6bdb565902f: Pushed") == 1
    assert not any("Pushing" in m for m in caplog.messages)


@pytest.mark.parametrize(
    "message",
    [
        "no basic auth credentials",
        "unauthorized: authentication required",
        "denied: requested access to the resource is denied",
    ],
)
def test_auth_refusals_say_how_to_log_in(message: str) -> None:
    error = classify_push_error(IMAGE, message)
    assert isinstance(error, RegistryAuthError)
    assert "docker login 127.0.0.1:5000" in str(error)
    assert "HK_REGISTRY_USERNAME" in str(error)


@pytest.mark.parametrize(
    "message",
    [
        'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused',
        "received unexpected HTTP status: 503 Service Unavailable",
        "read tcp 127.0.0.1:40000->127.0.0.1:5000: read: connection reset by peer",
        'Put "http://127.0.0.1:5000/v2/x/manifests/t": net/http: TLS handshake timeout',
    ],
)
def test_transient_failures_are_marked_for_retry(message: str) -> None:
    assert isinstance(classify_push_error(IMAGE, message), RegistryUnavailableError)


def test_other_refusals_are_plain_push_errors() -> None:
    error = classify_push_error(IMAGE, "manifest invalid: manifest invalid")
    assert type(error) is PushError
    assert "127.0.0.1:5000" in str(error)


def test_build_stream_gives_the_image_id(caplog: pytest.LogCaptureFixture) -> None:
    chunks: list[dict[str, Any]] = [
        {"stream": "Step 1/2 : FROM python:3.11\n"},
        {"stream": " ---> 3a86f8895a0b\n"},
        {"stream": "Step 2/2 : RUN pip install x\n"},
        {"stream": " ---> Running in 1c2d\n"},
        {"stream": "Successfully installed x-1\n"},
        {"aux": {"ID": "sha256:ea74e15a"}},
        {"stream": "Successfully built ea74e15a\n"},
    ]
    with caplog.at_level(logging.INFO, logger="hello_kubeflow.images.build"):
        assert follow_build(chunks) == "sha256:ea74e15a"
    assert "Step 2/2 : RUN pip install x" in caplog.messages


def test_a_base_image_that_cannot_be_pulled_is_named_with_its_registry_and_the_way_out() -> None:
    """Recorded from Docker Engine 20.10 building the project's Dockerfile with no route out."""
    base = "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0"
    said = 'Get "https://ghcr.io/v2/": dial tcp: lookup ghcr.io on 10.255.255.53:53: no such host'
    chunks: list[dict[str, Any]] = [
        {"stream": f"Step 1/31 : ARG BASE_IMAGE={base}"},
        {"stream": "\n"},
        {"stream": "Step 2/31 : FROM ${BASE_IMAGE}"},
        {"stream": "\n"},
        {"errorDetail": {"message": said}, "error": said},
    ]
    with pytest.raises(BuildError) as caught:
        follow_build(chunks, base_image=base)
    message = str(caught.value)
    assert f"could not get the base image {base} from ghcr.io: {said}" in message
    assert "--build-arg BASE_IMAGE=IMAGE" in message
    assert "HK_BASE_IMAGE=IMAGE" in message
    assert "inv build-push --base-image IMAGE" in message


def test_failed_build_step_is_quoted_with_its_last_lines() -> None:
    chunks: list[dict[str, Any]] = [
        {"stream": "Step 1/2 : FROM python:3.11\n"},
        {"stream": " ---> 3a86f8895a0b\n"},
        {"stream": "Step 2/2 : RUN pip install nosuchpackage\n"},
        {"stream": " ---> Running in 1c2d\n"},
        {"stream": "ERROR: No matching distribution found for nosuch"},
        {"stream": "package\n"},
        {
            "errorDetail": {"code": 1, "message": "returned a non-zero code: 1"},
            "error": "The command '/bin/sh -c pip install nosuchpackage' returned a non-zero "
            "code: 1",
        },
    ]
    with pytest.raises(BuildError) as caught:
        follow_build(chunks)
    message = str(caught.value)
    assert "Step 2/2 : RUN pip install nosuchpackage" in message
    assert "No matching distribution found for nosuchpackage" in message
    assert "returned a non-zero code: 1" in message
    assert "3a86f8895a0b" not in message  # output of an earlier step
