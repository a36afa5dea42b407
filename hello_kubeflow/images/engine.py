"""The connection to the Docker engine, and the error when there is none."""

from __future__ import annotations

import logging
import math
import os

import docker
import requests
from docker.utils import kwargs_from_env

from hello_kubeflow.errors import DockerUnavailableError

log = logging.getLogger(__name__)
PING_TIMEOUT_SECONDS = 10  # seconds for the engine to answer its first ping

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
START_ENGINE_HINT = (
    "Start one: `sudo systemctl start docker` (or `sudo dockerd &`; on a fresh "
    "Debian machine `sudo scripts/ci_docker.sh` installs and starts the engine and a "
    "local registry), or point DOCKER_HOST at a running engine."
)


def engine_address() -> str:
    """Where the Docker SDK will look for the engine (`DOCKER_HOST` or the socket)."""
    try:
        base_url = kwargs_from_env().get("base_url")
    except docker.errors.DockerException:  # e.g. TLS variables naming no certificates
        base_url = os.environ.get("DOCKER_HOST")  # connect() says what is wrong with them
    return str(base_url) if base_url else DEFAULT_DOCKER_HOST


def connect(timeout: float) -> docker.DockerClient:
    """Connect to the Docker engine (found as the `docker` CLI finds it) and check it answers.

    `timeout` (`HK_DOCKER_TIMEOUT`) bounds every later API call.

    Raises:
        DockerUnavailableError: when no engine answers, with how to start one.
    """
    address = engine_address()
    try:
        # A short ping first: an engine address that drops packets should fail in
        # seconds, not after the long timeout that builds and pushes need.
        probe = docker.from_env(timeout=PING_TIMEOUT_SECONDS)
        try:
            probe.ping()
        finally:
            probe.close()
        client = docker.from_env(timeout=max(1, math.ceil(timeout)))
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
        raise DockerUnavailableError(
            f"no Docker engine is reachable at {address} ({first}). " + START_ENGINE_HINT
        ) from None
    log.debug("connected to the Docker engine at %s", address)
    return client
