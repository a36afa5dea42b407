"""One Kubernetes API client from the kubeconfig and context, with timeouts and retry rules."""

from __future__ import annotations

import http.client
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_delay

from hello_kubeflow.errors import PrerequisiteError
from hello_kubeflow.retry import jittered_backoff, log_retry

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to open a connection (the read timeout is a setting)
DEFAULT_KUBECONFIG = Path("~/.kube/config")
FIELD_MANAGER = "hello-kubeflow"  # who owns the fields our server-side applies set
RETRY_INITIAL = 0.5
RETRY_MAX = 10.0

_NO_CLUSTER_FIX = (
    "Point KUBECONFIG (or HK_KUBE_CONTEXT) at a cluster: e.g. `kind create cluster` or "
    "`minikube start` writes ~/.kube/config. To work without a cluster, use HK_MODE=local."
)


@dataclass(frozen=True)
class KubeTarget:
    """The cluster a command is about to talk to, as the kubeconfig names it."""

    kubeconfig: str
    context: str
    cluster: str
    server: str
    user: str

    def describe(self) -> str:
        """One line naming context, cluster and server (never credentials)."""
        return f"context '{self.context}' (cluster '{self.cluster}' at {self.server})"


def _kubeconfig_paths(kubeconfig: Path | str | None) -> list[Path]:
    """The kubeconfig files to read: `KUBECONFIG` (a path list) or ~/.kube/config."""
    raw = str(kubeconfig or DEFAULT_KUBECONFIG)
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part]


def kube_target(kubeconfig: Path | str | None, context: str | None) -> KubeTarget:
    """Read which context, cluster and server the kubeconfig selects (no network).

    Args:
        kubeconfig: a file, or an `os.pathsep` list merged as kubectl does (None: ~/.kube/config).
        context: the context to use (None: the current one).

    Raises:
        PrerequisiteError: no kubeconfig, or no such context or cluster in it.
    """
    paths = [p for p in _kubeconfig_paths(kubeconfig) if p.is_file()]
    if not paths:
        shown = ", ".join(str(p) for p in _kubeconfig_paths(kubeconfig))
        raise PrerequisiteError(f"no kubeconfig found at {shown}. {_NO_CLUSTER_FIX}")
    contexts, clusters, current = _merged_kubeconfig(paths)
    where = os.pathsep.join(str(p) for p in paths)
    name = _context_name(context or current, contexts, where)
    cluster = str(contexts[name].get("cluster", ""))
    if cluster not in clusters:
        raise PrerequisiteError(
            f"context '{name}' names cluster '{cluster}', which the kubeconfig {where} "
            "does not define. Recreate the cluster's kubeconfig entry."
        )
    server = str(clusters[cluster].get("server", ""))
    return KubeTarget(where, name, cluster, server, str(contexts[name].get("user", "")))


def _merged_kubeconfig(
    paths: list[Path],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], str]:
    """(contexts, clusters, current context) of the files merged: the first to name one wins."""
    contexts: dict[str, dict[str, Any]] = {}
    clusters: dict[str, dict[str, Any]] = {}
    current = ""
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PrerequisiteError(f"cannot read kubeconfig {path}: {exc}") from None
        for entry in doc.get("contexts") or []:
            contexts.setdefault(str(entry.get("name")), entry.get("context") or {})
        for entry in doc.get("clusters") or []:
            clusters.setdefault(str(entry.get("name")), entry.get("cluster") or {})
        current = current or str(doc.get("current-context") or "")
    return contexts, clusters, current


def _context_name(name: str, contexts: dict[str, dict[str, Any]], where: str) -> str:
    """`name`, once it is known to be a context of the kubeconfig at `where`."""
    if not name:
        raise PrerequisiteError(
            f"the kubeconfig {where} has no current context. Pick one with "
            "`kubectl config use-context NAME` or set HK_KUBE_CONTEXT."
        )
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise PrerequisiteError(
            f"context '{name}' is not in the kubeconfig {where} (contexts: {known}). "
            "Fix HK_KUBE_CONTEXT or run `kubectl config get-contexts`."
        )
    return name


class TimedApiClient(client.ApiClient):  # type: ignore[misc]
    """An ApiClient whose every call without a `_request_timeout` gets (connect, read) seconds."""

    def __init__(self, configuration: client.Configuration, timeout: tuple[float, float]) -> None:
        super().__init__(configuration)
        self.request_timeout = timeout

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        """`ApiClient.call_api` with our timeout: no module keeps its own (a watch sets longer)."""
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = self.request_timeout
        return super().call_api(*args, **kwargs)


def api_client(
    kubeconfig: Path | str | None, context: str | None, read_timeout: float
) -> TimedApiClient:
    """An API client for the selected context (or the in-cluster service account).

    urllib3's own retries are off: callers retry what is transient with `api_retrying`.

    Args:
        kubeconfig: as for `kube_target`.
        context: as for `kube_target`.
        read_timeout: seconds to wait for each answer, unless a call passes its own
            `_request_timeout` (a tuple: the client ignores a plain float).

    Raises:
        PrerequisiteError: no usable kubeconfig or context, and not in a cluster.
    """
    configuration = client.Configuration()
    if any(p.is_file() for p in _kubeconfig_paths(kubeconfig)):
        target = kube_target(kubeconfig, context)
        try:
            config.load_kube_config(
                config_file=target.kubeconfig,
                context=target.context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (config.ConfigException, OSError, ValueError) as exc:
            raise PrerequisiteError(
                f"cannot use {target.describe()} from {target.kubeconfig}: {exc}. "
                "Check the kubeconfig with `kubectl config view --minify`."
            ) from None
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            kube_target(kubeconfig, context)  # raises the no-kubeconfig error, paths tried
    configuration.retries = False
    return TimedApiClient(configuration, (CONNECT_TIMEOUT, read_timeout))


_TRANSIENT_ERRORS = (
    urllib3.exceptions.ProtocolError,  # connection reset, broken stream
    urllib3.exceptions.TimeoutError,  # connect or read timeout
    urllib3.exceptions.NewConnectionError,  # refused, DNS failure
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether an API error may heal by retrying: network, 429, 5xx (not 501), status 0."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        return status in (0, 408, 429) or (500 <= status < 600 and status != 501)
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        return exc.reason is not None and is_transient(exc.reason)
    return isinstance(exc, _TRANSIENT_ERRORS)


def status_message(exc: ApiException) -> str:
    """The `message` of a Kubernetes Status body (never its headers)."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or "")[:500]
    except (ValueError, AttributeError):
        return ""


def api_prefix(api_version: str) -> str:
    """The path an API group/version is served under: `/api/v1` (core) or `/apis/<g>/<v>`."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def describe_api_error(exc: BaseException | None) -> str:
    """A one-line description: ApiException's own str carries headers and body."""
    if exc is None:
        return "failed"
    if isinstance(exc, ApiException):
        reason = str(exc.reason or "").strip()
        return f"HTTP {exc.status} {reason}".strip()
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def api_retrying(seconds: float, what: str) -> Retrying:
    """A tenacity policy for one API call, named `what` in the log: transient errors only.

    Use as `for attempt in api_retrying(60, what): with attempt: ...`, or
    `api_retrying(60, what)(function, *args)`; after `seconds` the last error is re-raised.
    """
    return Retrying(
        retry=retry_if_exception(is_transient),
        wait=jittered_backoff(RETRY_INITIAL, RETRY_MAX),
        stop=stop_after_delay(seconds),
        reraise=True,
        # Not before_sleep_log: an ApiException's str spans headers and body.
        before_sleep=log_retry(log, what, level=logging.INFO, describe=describe_api_error),
    )
