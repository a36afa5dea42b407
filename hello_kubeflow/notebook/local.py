"""`inv notebook` in local mode: the project image as a Jupyter server on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from hello_kubeflow.console import sigterm_interrupts
from hello_kubeflow.images.lifecycle import LABEL, running_container, show_log_until_exit
from hello_kubeflow.images.record import pipeline_image
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

JUPYTER_PORT = 8888
WORKDIR = "/home/jovyan/hello-kubeflow"
WHAT = "notebook server"
# The first Jupyter server the image has (JupyterLab in Kubeflow's images), with
# the options of their s6 service (kubeflow/kubeflow v1.10.0,
# components/example-notebook-servers/jupyter/s6/services.d/jupyterlab/run),
# but a token (JUPYTER_TOKEN) instead of none, and this checkout as root dir.
_START = f"""
for server in jupyter-lab jupyter-notebook jupyter-server; do
    if command -v "$server" >/dev/null 2>&1; then
        exec "$server" --ServerApp.ip=0.0.0.0 --ServerApp.port={JUPYTER_PORT} \\
            --ServerApp.open_browser=False --ServerApp.allow_root=True \\
            --ServerApp.root_dir={WORKDIR} --ServerApp.base_url=/
    fi
done
echo "this image has no Jupyter server (jupyter-lab, jupyter-notebook or jupyter-server):" \\
    "build it on a notebook image (inv build-push --base-image ...)" >&2
exit 3
"""


@dataclass(frozen=True)
class LocalNotebook:
    """A notebook server running in a local container (`container`: the Docker SDK's)."""

    url: str
    token: str
    image: str
    container: Any

    @property
    def login_url(self) -> str:
        """The URL with its token: what to open in a browser."""
        return f"{self.url}?token={self.token}"


@contextmanager
def notebook_container(
    settings: Settings, workdir: Path, *, image: str = "", port: int | None = None
) -> Iterator[LocalNotebook]:
    """Run the image's Jupyter server for the duration of a `with` block.

    Args:
        settings: `notebook_port`, `docker_timeout`, the image record.
        workdir: the checkout to mount at `/home/jovyan/hello-kubeflow`.
        image: default: `pipeline_image(settings)`.
        port: the host port on 127.0.0.1 (default: `HK_NOTEBOOK_PORT`; 0: any free one).

    Yields:
        The running server, once it answers `/api/status` with its token.

    Raises:
        DockerUnavailableError, ImageError: as `running_container`.
        ServingError: the server exited (e.g. no Jupyter in the image) or did not answer.
    """
    chosen = image or pipeline_image(settings)
    host_port = settings.notebook_port if port is None else port
    token = secrets.token_hex(24)
    mounted = workdir.expanduser().resolve()

    def create(client: docker.DockerClient, image: str) -> Any:
        return client.containers.create(
            image,
            entrypoint=["sh", "-c", _START],
            # The caller's own uid: what Jupyter writes into the checkout is theirs.
            user=f"{os.getuid()}:{os.getgid()}",
            working_dir=WORKDIR,
            volumes={str(mounted): {"bind": WORKDIR, "mode": "rw"}},
            ports={f"{JUPYTER_PORT}/tcp": ("127.0.0.1", host_port or None)},
            environment={
                "JUPYTER_TOKEN": token,
                # Runtime files and caches outside the checkout (the uid may have no home).
                "HOME": "/tmp/home",
                "JUPYTER_RUNTIME_DIR": "/tmp/jupyter_runtime",
                "USER": "jovyan",
            },
            labels={LABEL: "notebook-server"},
        )

    with running_container(
        settings.docker_timeout,
        chosen,
        WHAT,
        host_port,
        create,
        (JUPYTER_PORT, "/api/status"),
        headers={"Authorization": f"token {token}"},
    ) as (container, url):
        yield LocalNotebook(url + "/", token, chosen, container)


def run_notebook_container(
    settings: Settings, workdir: Path, *, announce: Callable[[str], None], image: str = ""
) -> None:
    """Serve Jupyter from the image until Ctrl-C, showing its log; `announce` gets its URL.

    Raises:
        ServingError: the server exited by itself or never answered (and as above).
    """
    with sigterm_interrupts(), notebook_container(settings, workdir, image=image) as server:
        announce(server.login_url)
        log.info("serving %s from %s; Ctrl-C stops", workdir, server.image)
        show_log_until_exit(server.container, WHAT, since=int(time.time()))
