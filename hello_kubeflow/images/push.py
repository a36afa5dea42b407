"""Push the image: every stream chunk checked (errors come inside an HTTP 200), bounded retries."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import docker
import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_delay

from hello_kubeflow.errors import (
    DockerUnavailableError,
    PushError,
    RegistryAuthError,
    RegistryUnavailableError,
    SettingsError,
)
from hello_kubeflow.images.plan import registry_host
from hello_kubeflow.retry import jittered_backoff, log_retry
from hello_kubeflow.settings import env_name

log = logging.getLogger(__name__)

PUSH_RETRY_SECONDS = 120.0
PUSH_RETRY_INITIAL_WAIT = 1.0
PUSH_RETRY_MAX_WAIT = 15.0
_AUTH = re.compile(
    r"unauthori[sz]ed|authentication required|no basic auth credentials|"
    r"access to the resource is denied|\bdenied:|incorrect username or password|"
    r"\b401\b|\b403\b|forbidden",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"connection refused|connection reset|broken pipe|\beof\b|timeout|timed out|"
    r"deadline exceeded|internal server error|bad gateway|service unavailable|"
    r"gateway timeout|too many requests|http status: (?:429|5\d\d)|status code (?:429|5\d\d)",
    re.IGNORECASE,
)
_LAYER_STATES = {"Pushed", "Layer already exists", "Mounted from"}


def registry_auth(user: str | None, password: str | None, registry: str) -> dict[str, str] | None:
    """Credentials for `registry` (`HK_REGISTRY_USERNAME`/`_PASSWORD`), or None: docker login's.

    Raises:
        SettingsError: only one of the username and the password is set.
    """
    if bool(user) != bool(password):
        missing = env_name("registry_password" if user else "registry_username")
        raise SettingsError(
            [
                f"{missing} is not set while its partner is: set both "
                "HK_REGISTRY_USERNAME and HK_REGISTRY_PASSWORD, or neither and run "
                f"`docker login {registry}`"
            ]
        )
    if user and password:
        return {"username": user, "password": password, "serveraddress": registry}
    return None


def push_image(
    client: docker.DockerClient,
    repository: str,
    tag: str,
    *,
    auth: dict[str, str] | None = None,
    retry_seconds: float = PUSH_RETRY_SECONDS,
) -> str:
    """Push `repository:tag` (registry included) and return its digest (`sha256:...`).

    Transient failures are retried for `retry_seconds`; `auth` None uses `docker login`'s.

    Raises:
        RegistryAuthError: the registry refused the credentials (not retried).
        RegistryUnavailableError: the registry stayed unreachable or failing.
        PushError: any other refusal (an invalid name, a missing image).
    """
    retrying = Retrying(
        retry=retry_if_exception_type(RegistryUnavailableError),
        stop=stop_after_delay(retry_seconds),
        wait=jittered_backoff(PUSH_RETRY_INITIAL_WAIT, PUSH_RETRY_MAX_WAIT),
        before_sleep=log_retry(log, f"pushing {repository}:{tag}"),
        reraise=True,
    )
    return retrying(_push_once, client, repository, tag, auth)


def follow_push(chunks: Iterable[Mapping[str, Any]], image: str) -> str:
    """Read a push stream to its end, logging layer progress; the digest the registry reported.

    Raises:
        PushError: (or a subclass) for the first error chunk, or no digest at all.
    """
    digest = ""
    seen: dict[str, str] = {}
    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = str(chunk.get("error") or detail.get("message") or chunk).strip()
            raise classify_push_error(image, message)
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = str(aux["Digest"])
        _log_progress(chunk, seen)
    if not digest:
        raise RegistryUnavailableError(
            f"the push of {image} ended without a digest from the registry "
            "(the stream was cut short)"
        )
    return digest


def _log_progress(chunk: Mapping[str, Any], seen: dict[str, str]) -> None:
    """Log a layer's status when it changes (kept in `seen`), or the push's."""
    status = str(chunk.get("status", ""))
    layer = str(chunk.get("id", ""))
    if layer and any(status.startswith(s) for s in _LAYER_STATES):
        if seen.get(layer) != status:
            seen[layer] = status
            log.info("  %s: %s", layer, status)
    elif status and not layer:
        log.info("%s", status)


def classify_push_error(image: str, message: str) -> PushError:
    """Turn the engine's push error text into the error a user can act on."""
    registry = registry_host(image)
    if _AUTH.search(message):
        return RegistryAuthError(
            f"the registry {registry} refused to let us push {image}: {message}. "
            f"Log in first: `docker login {registry}`, or set HK_REGISTRY_USERNAME and "
            "HK_REGISTRY_PASSWORD (environment or .env); and check that the account "
            "may push to that repository."
        )
    if _TRANSIENT.search(message):
        return RegistryUnavailableError(
            f"the registry {registry} could not take the push of {image}: {message}. "
            f"Check that it is up (for a local one: scripts/ci_docker.sh starts "
            "127.0.0.1:5000) and that CONTAINER_REGISTRY names it."
        )
    return PushError(f"the push of {image} to {registry} failed: {message}")


def _push_once(
    client: docker.DockerClient, repository: str, tag: str, auth: dict[str, str] | None
) -> str:
    image = f"{repository}:{tag}"
    log.info("pushing %s", image)
    try:
        stream = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
        digest = follow_push(stream, image)
    except docker.errors.APIError as exc:
        raise classify_push_error(image, str(exc.explanation or exc)) from None
    except requests.exceptions.Timeout:
        raise RegistryUnavailableError(
            f"the push of {image} timed out (no progress within HK_DOCKER_TIMEOUT)"
        ) from None
    except requests.exceptions.ConnectionError as exc:
        raise DockerUnavailableError(
            f"lost the Docker engine while pushing {image} ({exc})"
        ) from None
    log.info("pushed %s (%s)", image, digest)
    return digest
