"""The model server in the project image (`inv serve --container`), model mounted read-only."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from hello_kubeflow.console import sigterm_interrupts
from hello_kubeflow.errors import ModelError
from hello_kubeflow.images.lifecycle import LABEL, running_container, show_log_until_exit
from hello_kubeflow.images.record import pipeline_image
from hello_kubeflow.serving import SERVER_COMMAND
from hello_kubeflow.settings import Settings, environment

log = logging.getLogger(__name__)

CONTAINER_MODEL_DIR = "/mnt/model"
CONTAINER_PORT = 9000
HEALTH_PATH = "/health/ping"
WHAT = "model server"


@dataclass(frozen=True)
class ServerContainer:
    """A model server running in a container: its URL, its image, the Docker SDK container."""

    url: str
    image: str
    container: Any


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

    Raises:
        ModelError: `model_dir` is not a directory.
        ServingError: the server exited or did not answer in time (and as `running_container`).
    """
    source = model_dir.expanduser().resolve()
    if not source.is_dir():
        raise ModelError(f"no model directory at {source}: run `inv train` first, or pass --model")
    chosen = image or pipeline_image(settings)
    host_port = settings.serve_port if port is None else port

    def create(client: docker.DockerClient, image: str) -> Any:
        return client.containers.create(
            image,
            # The server's own command, not the notebook image's init and Jupyter.
            entrypoint=list(SERVER_COMMAND),
            volumes={str(source): {"bind": CONTAINER_MODEL_DIR, "mode": "ro"}},
            ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", host_port or None)},
            environment=environment(
                model_dir=CONTAINER_MODEL_DIR,
                serve_host="0.0.0.0",
                serve_port=CONTAINER_PORT,
                serve_workers=settings.serve_workers,
                model_name=settings.model_name,
                max_body_bytes=settings.max_body_bytes,
            ),
            labels={LABEL: "model-server"},
        )

    timeout, served = settings.docker_timeout, (CONTAINER_PORT, HEALTH_PATH)
    with running_container(timeout, chosen, WHAT, host_port, create, served) as (container, url):
        yield ServerContainer(url, chosen, container)


def run_server_container(settings: Settings, model_dir: Path, *, image: str = "") -> None:
    """Serve `model_dir` from the image until Ctrl-C, showing the server's log.

    Raises:
        ServingError: the server exited by itself, or never answered (and as `server_container`).
    """
    with sigterm_interrupts(), server_container(settings, model_dir, image=image) as server:
        log.info("serving %s at %s from %s; Ctrl-C stops", model_dir, server.url, server.image)
        show_log_until_exit(server.container, WHAT)


def step_container_args() -> dict[str, Any]:
    """`docker run` options for pipeline steps run by kfp.local's `DockerRunner`.

    As the caller's uid (not `jovyan`): the steps write into the pipeline root,
    which is the caller's. No entrypoint (a notebook image's would start Jupyter):
    each step runs exactly its component's command, as a Kubernetes `command` does.
    """
    return {"user": f"{os.getuid()}:{os.getgid()}", "entrypoint": []}
