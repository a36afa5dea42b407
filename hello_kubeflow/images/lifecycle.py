"""A local container's life (the model server's, the notebook's): pull, start, wait, stop."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import docker
import requests

from hello_kubeflow.console import for_stream
from hello_kubeflow.errors import ImageError, ServingError
from hello_kubeflow.http_client import send
from hello_kubeflow.images.engine import connect

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
PROBE_TIMEOUT = 2.0
PROBE_INTERVAL = 0.5
STOP_TIMEOUT = 10
LOG_TAIL = 30
LABEL = "org.hello-kubeflow.role"


def ensure_image(client: docker.DockerClient, image: str) -> None:
    """Pull `image` unless the engine has it (ImageError: neither here nor pullable)."""
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    log.info("pulling %s", image)
    try:
        client.images.pull(image)
    except docker.errors.APIError as exc:
        raise ImageError(
            f"image {image} is not on this machine and cannot be pulled "
            f"({exc.explanation or exc}): run `inv build-push` first, or set "
            "HK_PIPELINE_IMAGE to an image you can pull"
        ) from None


@contextmanager
def running_container(
    docker_timeout: float,
    image: str,
    what: str,
    port: int,
    create: Callable[..., Any],
    served: tuple[int, str],
    **request: Any,
) -> Iterator[tuple[Any, str]]:
    """A container made by `create(client, image)`, started and answering; then removed.

    Yields the container and `http://127.0.0.1:PORT` where its port `served[0]` is
    published, once `served[1]` (a path) answers 2xx (`request`: extra GET arguments).
    Removed however its start ends: one created but not started (a port taken)
    would otherwise stay behind in "Created" state. `what` names it in messages,
    `port` (the host port asked for) in the error when it is taken.

    Raises:
        ServingError: Docker refused to create or start it, it exited or did not answer
            (and as `connect`, `ensure_image`).
    """
    client = connect(docker_timeout)
    container = None
    try:
        ensure_image(client, image)
        try:
            container = create(client, image)
            container.start()
        except docker.errors.APIError as exc:
            raise ServingError(
                f"Docker could not start the {what} from {image}: {exc.explanation or exc}"
                f" (is port {port} on 127.0.0.1 free? choose another with --port)"
            ) from None
        log.info("%s container %s (%s) starting", what, container.short_id, image)
        url = published_url(container, served[0], what)
        wait_until_answers(container, url + served[1], what, **request)
        yield container, url
    finally:
        if container is not None:
            with suppress(docker.errors.APIError):
                container.stop(timeout=STOP_TIMEOUT)
            with suppress(docker.errors.APIError):
                container.remove(force=True)
        client.close()


def logs(container: Any) -> str:
    """The last `LOG_TAIL` lines the container printed."""
    return str(container.logs(tail=LOG_TAIL).decode(errors="replace"))


def published_url(container: Any, port: int, what: str) -> str:
    """`http://127.0.0.1:PORT` where `port` is published (ServingError with its log: none)."""
    container.reload()
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp")
    if not bindings:
        raise ServingError(
            f"the {what} exited before answering (state {container.status}):\n{logs(container)}"
        )
    return f"http://127.0.0.1:{bindings[0]['HostPort']}"


def wait_until_answers(container: Any, url: str, what: str, **request: Any) -> None:
    """Poll `url` (GET, with `request`'s extra arguments) until it answers 2xx.

    Raises:
        ServingError: the container exited, or `READY_TIMEOUT` passed (with its log).
    """
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            raise ServingError(f"the {what} exited before answering:\n{logs(container)}")
        with suppress(requests.RequestException):
            if send("GET", url, timeout=PROBE_TIMEOUT, **request).ok:
                log.info("%s answers at %s", what, url)
                return
        time.sleep(PROBE_INTERVAL)
    raise ServingError(
        f"the {what} at {url} did not answer within {READY_TIMEOUT:.0f} s; "
        f"its log:\n{logs(container)}"
    )


def show_log_until_exit(container: Any, what: str, *, since: int | None = None) -> None:
    """Copy the container's log to stderr until it stops; then it failed.

    Raises:
        ServingError: always, once the container exited by itself (its exit code).
    """
    extra = {} if since is None else {"since": since}
    for chunk in container.logs(stream=True, follow=True, **extra):
        sys.stderr.write(for_stream(chunk.decode(errors="replace"), sys.stderr))
    container.reload()
    code = container.attrs.get("State", {}).get("ExitCode")
    raise ServingError(f"the {what} container exited (code {code}); see its log")
