"""`inv notebook` in cluster mode: run the project image as a Kubeflow Notebook server."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hello_kubeflow.errors import NotebookError, PrerequisiteError
from hello_kubeflow.gateway.endpoints import (
    GATEWAY_LOCAL_PORT,
    GATEWAY_NAMESPACE,
    GATEWAY_PORT,
    GATEWAY_SERVICE,
)
from hello_kubeflow.images.record import pipeline_image
from hello_kubeflow.kube.client import (
    FIELD_MANAGER,
    api_client,
    api_prefix,
    api_retrying,
    describe_api_error,
    status_message,
)
from hello_kubeflow.kube.pods import Pod, pod_state
from hello_kubeflow.kube.wait import NO_RESTART_LIMIT, REAL_TIME, Clock, CrashJudge, poll_until
from hello_kubeflow.notebook.manifests import (
    NOTEBOOK_API,
    PIPELINE_ACCESS,
    POD_LABEL,
    PODDEFAULT_API,
    NotebookSpec,
    notebook,
    pipeline_access,
    workspace_claim,
)
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0
POLL_INTERVAL = 2.0
_NOTEBOOKS = NOTEBOOK_API[:2]


class _Missing(Exception):
    """The object is not there (HTTP 404)."""


@dataclass(frozen=True)
class NotebookServer:
    """A notebook server that is ready in the cluster.

    Attributes:
        spec: what runs, where.
        url: where a browser reaches it, through the Kubeflow gateway.
        pod: the server's pod.
        created: what this call created (PodDefault, volume).
        port_forward: the command to run first when no gateway URL is set ("" otherwise).
    """

    spec: NotebookSpec
    url: str
    pod: str
    created: tuple[str, ...] = ()
    port_forward: str = ""

    def describe(self) -> str:
        """A few lines for a person: what is ready, where, and how to reach it."""
        lines = [f"created {what}" for what in self.created]
        lines.append(
            f"Notebook {self.spec.namespace}/{self.spec.name} is ready (pod {self.pod}, "
            f"image {self.spec.image})"
        )
        if self.port_forward:
            lines.append(f"reach the gateway first: {self.port_forward}")
        lines.append(f"open {self.url} (log in to Kubeflow if asked)")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """What is ready and where, as plain JSON values."""
        return {
            "namespace": self.spec.namespace,
            "name": self.spec.name,
            "image": self.spec.image,
            "url": self.url,
            "pod": self.pod,
            "created": list(self.created),
            "port_forward": self.port_forward,
        }


def open_notebook(
    settings: Settings,
    *,
    api: client.ApiClient | None = None,
    poll_interval: float = POLL_INTERVAL,
    clock: Clock = REAL_TIME,
) -> NotebookServer:
    """Create or update the Notebook, wait until it is ready, and say where it is.

    Args:
        settings: namespace, name, resources, image, `notebook_timeout`, `gateway_url`.
        api: an API client to use (default: one from the settings).
        poll_interval: seconds between looks at the server's pod.
        clock: where the wait reads the time and pauses.

    Raises:
        NotebookError: the namespace is `kubeflow`; refused, gone, a pod that will not
            heal, or not ready in time (`notebook_timeout`).
        PrerequisiteError: no Kubeflow Notebooks, forbidden, or an image not by digest.
        ImageError: the build record is damaged.
    """
    _check_namespace(settings.namespace)
    image = pipeline_image(settings)
    if "@sha256:" not in image:
        raise PrerequisiteError(
            f"the image {image} is not pinned by digest, so the cluster could run another "
            "one: run `inv build-push` (it records the digest), or set "
            "HK_PIPELINE_IMAGE=<repository>@sha256:<digest>"
        )
    spec = NotebookSpec(
        settings.notebook_name,
        settings.namespace,
        image,
        settings.notebook_cpu,
        settings.notebook_memory,
        settings.notebook_volume_size,
    )
    api = api or api_client(*settings.kube_access)
    created = []
    if _create_if_missing(api, pipeline_access(spec.namespace), PODDEFAULT_API[1]):
        created.append(f"PodDefault {spec.namespace}/{PIPELINE_ACCESS}")
    if _create_if_missing(api, workspace_claim(spec), "persistentvolumeclaims"):
        created.append(f"workspace volume {spec.namespace}/{spec.claim_name}")
    _apply(api, notebook(spec), NOTEBOOK_API[1])
    log.info("applied Notebook %s/%s (image %s)", spec.namespace, spec.name, spec.image)
    pod = _wait_until_ready(
        api, spec, settings.notebook_timeout, poll_interval, settings.wait_crash_grace, clock
    )
    url, forward = _url(settings.gateway_url, spec)
    return NotebookServer(spec, url, pod, tuple(created), forward)


def delete_notebook(settings: Settings, *, api: client.ApiClient | None = None) -> list[str]:
    """Delete the Notebook (its workspace volume is kept: it holds the user's work).

    Returns:
        What was deleted (empty when there was no such Notebook).
    """
    _check_namespace(settings.namespace)
    api = api or api_client(*settings.kube_access)
    namespace, name = settings.namespace, settings.notebook_name
    try:
        _request(api, "DELETE", _path(*_NOTEBOOKS, namespace, name), f"deleting Notebook {name}")
    except _Missing:
        return []
    log.info("deleted Notebook %s/%s", namespace, name)
    return [f"Notebook {namespace}/{name}"]


def _check_namespace(namespace: str) -> None:
    if namespace == "kubeflow":
        raise NotebookError(
            "notebook servers run in your Kubeflow profile namespace, not in kubeflow: set "
            "HK_NAMESPACE (or --namespace) to yours, e.g. kubeflow-user-example-com"
        )


def _wait_until_ready(
    api: client.ApiClient,
    spec: NotebookSpec,
    timeout: float,
    poll_interval: float,
    crash_grace: float,
    clock: Clock,
) -> str:
    """Poll the Notebook's pod until one running `spec.image` is Ready; return its name."""
    where = f"Notebook {spec.namespace}/{spec.name}"
    crashes = CrashJudge(crash_grace)

    def look() -> tuple[str | None, str]:
        try:
            _request(api, "GET", _path(*_NOTEBOOKS, spec.namespace, spec.name), f"reading {where}")
        except _Missing:
            raise NotebookError(f"{where} disappeared while we waited for it") from None
        ready, status = _judge(spec, _pods(api, spec), crashes, clock.now())
        return (status if ready else None), status

    def too_late(status: str) -> NotebookError:
        return NotebookError(
            f"{where} was not ready within {timeout:.0f} s (last status: {status}). See "
            f"`kubectl describe notebooks -n {spec.namespace} {spec.name}` and "
            f"`kubectl get pods -n {spec.namespace} -l {POD_LABEL}={spec.name}`; "
            "raise HK_NOTEBOOK_TIMEOUT (or --timeout) if the cluster is only slow"
        )

    pod = poll_until(
        where, look, timeout=timeout, poll_interval=poll_interval, too_late=too_late, clock=clock
    )
    log.info("%s is ready", where)
    return pod


def _judge(
    spec: NotebookSpec, pods: list[Pod], crashes: CrashJudge, now: float
) -> tuple[bool, str]:
    """(ready?, the ready pod's name or a short status); raise on a pod that will not heal.

    Pods still running another image are being replaced: their state is not this rollout's.
    """
    current = [pod for pod in pods if _image(pod, spec.name) == spec.image]
    states = [pod_state(pod, NO_RESTART_LIMIT) for pod in current]
    for state in crashes.judge(states, now):
        if state.fatal:
            raise NotebookError(f"the notebook server cannot start: {state.explain()}")
        if state.ready:
            return True, state.name
    if not current:
        old = f" ({len(pods)} of an earlier image being replaced)" if pods else ""
        return False, f"waiting for the Notebook controller to make its pod{old}"
    state = states[0]
    detail = f" ({state.message})" if state.message else ""
    return False, f"pod {state.name}: {state.reason}{detail}"


def _image(pod: Pod, container: str) -> str:
    for each in (pod.get("spec") or {}).get("containers") or []:
        if each.get("name") == container:
            return str(each.get("image") or "")
    return ""


def _pods(api: client.ApiClient, spec: NotebookSpec) -> list[Pod]:
    found = _request(
        api,
        "GET",
        _path("v1", "pods", spec.namespace),
        f"listing the pods of Notebook {spec.name}",
        query=[("labelSelector", f"{POD_LABEL}={spec.name}")],
    )
    return list(found.get("items") or [])


def _url(gateway_url: str | None, spec: NotebookSpec) -> tuple[str, str]:
    """(the URL through the gateway, the port-forward to run first or "")."""
    if gateway_url:
        return gateway_url + spec.path, ""
    forward = (
        f"kubectl port-forward -n {GATEWAY_NAMESPACE} {GATEWAY_SERVICE} "
        f"{GATEWAY_LOCAL_PORT}:{GATEWAY_PORT}"
    )
    return f"http://localhost:{GATEWAY_LOCAL_PORT}{spec.path}", forward


def _path(api_version: str, plural: str, namespace: str, name: str = "") -> str:
    prefix = api_prefix(api_version)
    return f"{prefix}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def _create_if_missing(api: client.ApiClient, obj: dict[str, Any], plural: str) -> bool:
    """Create `obj` unless an object of its name exists; True when created."""
    meta = obj["metadata"]
    what = f"{obj['kind']} {meta['namespace']}/{meta['name']}"
    collection = _path(obj["apiVersion"], plural, meta["namespace"])
    try:
        _request(api, "GET", f"{collection}/{meta['name']}", f"reading {what}")
        return False
    except _Missing:
        pass
    _request(api, "POST", collection, f"creating {what}", obj, missing=_not_installed(obj))
    log.info("created %s", what)
    return True


def _apply(api: client.ApiClient, obj: dict[str, Any], plural: str) -> None:
    meta = obj["metadata"]
    _request(
        api,
        "PATCH",
        _path(obj["apiVersion"], plural, meta["namespace"], meta["name"]),
        f"applying {obj['kind']} {meta['namespace']}/{meta['name']}",
        obj,
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        content_type="application/apply-patch+yaml",
        missing=_not_installed(obj),
    )


def _not_installed(obj: dict[str, Any]) -> PrerequisiteError:
    return PrerequisiteError(
        f"the cluster has no {obj['kind']} resource type: Kubeflow Notebooks (the notebook "
        "controller and the PodDefault admission webhook) come with the full Kubeflow "
        "install, `inv setup --mode cluster --profile full`"
    )


def _request(
    api: client.ApiClient,
    method: str,
    path: str,
    what: str,
    body: dict[str, Any] | None = None,
    *,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    missing: Exception | None = None,
) -> dict[str, Any]:
    """One API call, transient errors retried; 404 is `missing` (or `_Missing`), the rest clear."""
    try:
        result = api_retrying(RETRY_SECONDS, what)(
            api.call_api,
            path,
            method,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except ApiException as exc:
        status = int(exc.status or 0)
        if status == 404:
            raise missing or _Missing(what) from None
        if status in (401, 403):
            raise PrerequisiteError(
                f"{what}: forbidden ({describe_api_error(exc)}). Use a kubeconfig context "
                "that may edit your profile namespace (check `kubectl auth can-i create "
                "notebooks.kubeflow.org -n <namespace>`)"
            ) from None
        raise NotebookError(f"{what}: {describe_api_error(exc)}: {status_message(exc)}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise NotebookError(
            f"{what}: the Kubernetes API did not answer ({describe_api_error(exc)}); "
            "check the cluster with `inv status`"
        ) from None
    return dict(result or {})
