"""The model server in the project image (`inv serve --container`).

The model directory is mounted read-only, the port is published on 127.0.0.1
only, and the container is stopped and removed when the caller is done.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import docker
import requests

from hello_kubeflow.errors import ImageError, ModelError, ServingError
from hello_kubeflow.images.engine import connect
from hello_kubeflow.images.record import pipeline_image
from hello_kubeflow.serving import SERVER_COMMAND
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

CONTAINER_MODEL_DIR = "/mnt/model"
CONTAINER_PORT = 9000
HEALTH_PATH = "/health/ping"
READY_TIMEOUT = 120.0
PROBE_TIMEOUT = 2.0
PROBE_INTERVAL = 0.5
STOP_TIMEOUT = 10
LOG_TAIL = 30
LABEL = "org.hello-kubeflow.role"


@dataclass(frozen=True)
class ServerContainer:
    """A model server running in a container.

    Attributes:
        url: where it answers, e.g. `http://127.0.0.1:9000`.
        image: the image it runs.
        container: the Docker SDK container object.
    """

    url: str
    image: str
    container: Any

    def logs(self, tail: int = LOG_TAIL) -> str:
        """The last lines the server printed."""
        return str(self.container.logs(tail=tail).decode(errors="replace"))


@contextmanager
def server_container(
    settings: Settings, model_dir: Path, *, image: str = "", port: int | None = None
) -> Iterator[ServerContainer]:
    """Run the model server in the image for the duration of a `with` block.

    Args:
        settings: model name, body limit, workers, `docker_timeout`.
        model_dir: the model artifact directory, mounted read-only.
        image: the image (default: `pipeline_image(settings)`, by digest).
        port: the host port on 127.0.0.1 (default: `HK_SERVE_PORT`; 0: any free one).

    Yields:
        The running server, once it answers its health check.

    Raises:
        ModelError: `model_dir` is not a directory.
        DockerUnavailableError: no engine is reachable.
        ImageError: the image is neither here nor pullable.
        ServingError: the server exited or did not answer in time (with its log).
    """
    source = model_dir.expanduser().resolve()
    if not source.is_dir():
        raise ModelError(f"no model directory at {source}: run `inv train` first, or pass --model")
    chosen = image or pipeline_image(settings)
    host_port = settings.serve_port if port is None else port
    client = connect(settings)
    try:
        ensure_image(client, chosen)
        container = _start(client, settings, chosen, source, host_port)
        try:
            server = ServerContainer(_published_url(container), chosen, container)
            log.info("model server container %s (%s) starting", container.short_id, chosen)
            _wait_ready(server)
            yield server
        finally:
            with suppress(docker.errors.APIError):
                container.stop(timeout=STOP_TIMEOUT)
            with suppress(docker.errors.APIError):
                container.remove(force=True)
    finally:
        client.close()


def run_server_container(settings: Settings, model_dir: Path, *, image: str = "") -> None:
    """Serve `model_dir` from the image until Ctrl-C, showing the server's log.

    Raises:
        ServingError: the server exited by itself, or never answered.
        (and as `server_container`)
    """
    # SIGTERM (kill, a supervisor) stops the container too, as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with server_container(settings, model_dir, image=image) as server:
            log.info("serving %s at %s from %s; Ctrl-C stops", model_dir, server.url, server.image)
            for chunk in server.container.logs(stream=True, follow=True):
                sys.stderr.write(chunk.decode(errors="replace"))
            server.container.reload()
            code = server.container.attrs.get("State", {}).get("ExitCode")
            raise ServingError(f"the model server container exited (code {code}); see its log")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def step_container_args() -> dict[str, Any]:
    """`docker run` options for pipeline steps run by kfp.local's `DockerRunner`.

    The steps write into the mounted pipeline root, which belongs to whoever runs
    `inv train`; running them as that user (not the image's `jovyan`) lets them
    write there and leaves outputs the user owns. The image's entrypoint (a
    notebook image's init, which starts Jupyter) is reset, so each step runs
    exactly the command its component names, as a Kubernetes `command` does.
    """
    return {"user": f"{os.getuid()}:{os.getgid()}", "entrypoint": []}


def _start(
    client: docker.DockerClient, settings: Settings, image: str, model_dir: Path, port: int
) -> Any:
    try:
        return client.containers.run(
            image,
            # The server's own command, not the notebook image's init and Jupyter.
            entrypoint=list(SERVER_COMMAND),
            detach=True,
            volumes={str(model_dir): {"bind": CONTAINER_MODEL_DIR, "mode": "ro"}},
            ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port or None)},
            environment={
                "HK_MODEL_DIR": CONTAINER_MODEL_DIR,
                "HK_SERVE_HOST": "0.0.0.0",
                "HK_SERVE_PORT": str(CONTAINER_PORT),
                "HK_SERVE_WORKERS": str(settings.serve_workers),
                "HK_MODEL_NAME": settings.model_name,
                "HK_MAX_BODY_BYTES": str(settings.max_body_bytes),
            },
            labels={LABEL: "model-server"},
        )
    except docker.errors.APIError as exc:
        raise ServingError(
            f"Docker could not start the model server from {image}: {exc.explanation or exc}"
            f" (is port {port} on 127.0.0.1 free? choose another with --port)"
        ) from None


def ensure_image(client: docker.DockerClient, image: str) -> None:
    """Pull `image` unless the engine has it.

    Raises:
        ImageError: it is neither here nor pullable (says how to build it).
    """
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


def _published_url(container: Any) -> str:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{CONTAINER_PORT}/tcp") or []
    if not bindings:
        raise ServingError(f"the container {container.short_id} published no port")
    return f"http://127.0.0.1:{bindings[0]['HostPort']}"


def _wait_ready(server: ServerContainer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        server.container.reload()
        if server.container.status in ("exited", "dead"):
            raise ServingError(
                f"the model server container exited before answering:\n{server.logs()}"
            )
        with suppress(requests.RequestException):
            if requests.get(server.url + HEALTH_PATH, timeout=PROBE_TIMEOUT).ok:
                log.info("model server answers at %s", server.url)
                return
        time.sleep(PROBE_INTERVAL)
    raise ServingError(
        f"the model server at {server.url} did not answer {HEALTH_PATH} within "
        f"{READY_TIMEOUT:.0f} s; its log:\n{server.logs()}"
    )
