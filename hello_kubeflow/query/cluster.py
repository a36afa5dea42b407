"""`inv query --mode cluster`: the served model through the cluster's gateway (or its service).

The payload, sanity check and authentication are local mode's and cluster mode's own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from hello_kubeflow.deploy.kserve_access import (
    ISVC_LABEL,
    KServeInstall,
    deployment_mode,
    ensure_policy,
    policy_name,
    read_install,
    route,
    wait_until_allowed,
)
from hello_kubeflow.deploy.model_manifests import SERVING_APIS
from hello_kubeflow.deploy.serving_api import Missing, call, read_deployment
from hello_kubeflow.errors import EndpointError, HelloKubeflowError, PrerequisiteError
from hello_kubeflow.gateway.endpoints import (
    GATEWAY_NAMESPACE,
    GATEWAY_SERVICE,
    Auth,
    ServingAddress,
    check_access,
    gateway,
    model_service,
    serving_address,
)
from hello_kubeflow.gateway.login import gateway_auth
from hello_kubeflow.kube.client import api_client
from hello_kubeflow.kube.port_forward import port_forward
from hello_kubeflow.query.client import (
    AccuracyResult,
    QueryResult,
    endpoint_url,
    query_accuracy,
    query_digit,
)
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

PROTOCOLS = {"seldon": "seldon", "kserve": "v2"}


def query_cluster(
    settings: Settings,
    *,
    index: int = -1,
    image: str = "",
    plot: str = "",
    count: int = 0,
    start: int = 0,
) -> QueryResult | AccuracyResult:
    """Query the model served in the cluster, as `inv query` does locally.

    Args:
        settings: gateway, namespace, deployment name, serving system, credentials.
        index: an MNIST test image index (-1: at random); `image` a drawn digit instead.
        plot: a PNG to write with the digit and the probabilities.
        count: send this many test images from `start` and measure accuracy (0: one image).

    Raises:
        EndpointError: the gateway refused us (with how to log in) or the model did not answer.
        LoginError: logging in with HK_KUBEFLOW_USERNAME/PASSWORD failed.
        SanityCheckError: the answer is not ten probabilities naming a digit.
        PrerequisiteError: a port-forward is needed without kubectl or a usable kubeconfig.
    """
    auth = Auth.from_settings(settings)
    served = _served(settings)
    protocol = PROTOCOLS[served.serving]
    with _route(settings, served) as (address, via, base):
        if base:  # through Kubeflow's gateway: log in there when asked to
            auth = gateway_auth(base, auth, settings.kubeflow_username, settings.kubeflow_password)
        headers = {**auth.headers(), **address.headers()}
        where = (settings.namespace, settings.deployment_name)
        policy = bool(base) and served.serving == "kserve" and _let_in(served, *where)
        if policy:
            wait_until_allowed(
                address.url,
                headers,
                namespace=settings.namespace,
                name=settings.deployment_name,
                timeout=settings.access_wait,
                request_timeout=settings.query_timeout,
            )
        hint = f". {_policy_help(*where)}" if served.serving == "kserve" and not policy else ""
        check_access(
            address.url, auth, address.headers(), timeout=settings.query_timeout, on_403=hint
        )
        log.info("querying %s (%s) through %s", settings.deployment_name, served.serving, via)
        sent: dict[str, Any] = {"protocol": protocol, "headers": headers, "url": address.url}
        try:
            if count:
                return query_accuracy(settings, count=count, start=start, **sent)
            return query_digit(settings, index=index, image=image, plot=plot, **sent)
        except EndpointError as exc:
            raise EndpointError(
                f"{exc}. In cluster mode the model is {settings.namespace}/"
                f"{settings.deployment_name} ({served.serving}), reached through {via}: check "
                f"it with `kubectl get {SERVING_APIS[served.serving].kind.lower()} -n "
                f"{settings.namespace}`; `inv train --mode cluster` deploys it"
            ) from None


def _policy_help(namespace: str, name: str) -> str:
    """What to do about KServe's 403: the policy `kserve_access` makes, by name and selector."""
    return (
        'If the gateway let you in and the model refused you ("RBAC: access denied"), the '
        "InferenceService lacks its Istio AuthorizationPolicy in a Kubeflow profile namespace: "
        f"with a kubeconfig, inv query makes it ({policy_name(name)}); else ask for one "
        f"selecting {ISVC_LABEL}={name} in {namespace}"
    )


@dataclass(frozen=True)
class _Served:
    """What the cluster says about the served model (None: the cluster was not asked)."""

    serving: str
    resource: dict[str, Any] | None = None
    has_gateway: bool | None = None
    api: Any = None
    kserve: KServeInstall | None = None


def _let_in(served: _Served, namespace: str, name: str) -> bool:
    """Make the InferenceService's AuthorizationPolicy; True when one now exists to wait for."""
    if served.api is None:
        return False
    try:
        return ensure_policy(served.api, namespace, name)
    except HelloKubeflowError as exc:  # e.g. no right to: the query may still get through
        log.warning("could not make the InferenceService's AuthorizationPolicy: %s", exc)
        return False


@contextmanager
def _route(settings: Settings, served: _Served) -> Iterator[tuple[ServingAddress, str, str]]:
    """The predictions address, what it goes through, the gateway's URL ("": none): through
    the gateway unless the cluster has no Istio (`HK_PROFILE=pipelines`), as the walkthrough.
    """
    status = (served.resource or {}).get("status") or {}
    if settings.gateway_url or served.has_gateway is not False:
        host, prefix = _kserve_route(served, settings.namespace, settings.deployment_name)
        with gateway(settings) as base:
            address = serving_address(
                base,
                served.serving,
                namespace=settings.namespace,
                name=settings.deployment_name,
                model_name=settings.model_name,
                status_url=status.get("url"),
                host=host,
                prefix=prefix,
            )
            yield address, f"the gateway at {base}", base
        return
    service, port = model_service(served.serving, settings.deployment_name, status)
    protocol = PROTOCOLS[served.serving]
    with port_forward(
        f"svc/{service}",
        settings.namespace,
        port,
        kubeconfig=settings.kubeconfig,
        context=settings.kube_context,
    ) as base:
        yield (
            ServingAddress(endpoint_url(base, settings.model_name, protocol), protocol=protocol),
            f"svc/{service} (no Istio gateway in the cluster)",
            "",
        )


def _kserve_route(served: _Served, namespace: str, name: str) -> tuple[str, str]:
    """The Host and path prefix the installed KServe routes on ("", "": not known here)."""
    if served.kserve is None or served.resource is None:
        return "", ""
    mode = deployment_mode(served.resource, served.kserve)
    status = served.resource.get("status") or {}
    found = route(served.kserve, mode, namespace, name, status.get("url"))
    log.info(
        "KServe %s, %s mode: Host %s%s",
        served.kserve.version or "(version unknown)",
        served.kserve.mode_name(mode) or "default",
        found.host,
        f", path {found.prefix}/" if found.prefix else "",
    )
    return found.host, found.prefix


def _served(settings: Settings) -> _Served:
    """Which system serves the model, its resource, and whether the Istio gateway exists;
    without a usable kubeconfig, `HK_SERVING` decides (`auto`: Seldon, the walkthrough's),
    and without HK_GATEWAY_URL either, a `PrerequisiteError`.
    """
    kinds = ("seldon", "kserve") if settings.serving == "auto" else (settings.serving,)
    try:
        api = api_client(*settings.kube_access)
    except PrerequisiteError as exc:
        if not settings.gateway_url:
            # The way in would be `kubectl port-forward`, which needs what is missing here:
            # stop now, as `inv status` does, rather than show kubectl's own errors.
            raise PrerequisiteError(
                f"{exc} To query a Kubeflow gateway without a kubeconfig, set HK_GATEWAY_URL."
            ) from None
        return _assumed(kinds[0], exc)
    try:
        for serving in kinds:
            resource = read_deployment(api, serving, settings.namespace, settings.deployment_name)
            if resource is not None:
                kserve = read_install(api) if serving == "kserve" else None
                return _Served(serving, resource, _has_istio_gateway(api), api, kserve)
    except HelloKubeflowError as exc:
        return _assumed(kinds[0], exc)
    raise EndpointError(
        f"no model is deployed as {settings.namespace}/{settings.deployment_name} "
        f"(looked for {' and '.join(SERVING_APIS[k].kind for k in kinds)}): run "
        "`inv train --mode cluster`, which deploys it, or fix HK_NAMESPACE / HK_DEPLOYMENT_NAME"
    )


def _assumed(serving: str, problem: HelloKubeflowError) -> _Served:
    """`HK_SERVING`'s choice, when the cluster could not be asked."""
    log.info("could not look the deployment up in the cluster (%s)", problem)
    log.info("assuming the model is served by %s (HK_SERVING)", serving)
    return _Served(serving)


def _has_istio_gateway(api: Any) -> bool | None:
    """Whether `svc/istio-ingressgateway` exists in `istio-system` (None: may not look)."""
    read = client.CoreV1Api(api).read_namespaced_service
    name = GATEWAY_SERVICE.removeprefix("svc/")
    what = f"looking for {GATEWAY_SERVICE} in {GATEWAY_NAMESPACE}"
    try:
        call(what, lambda: read(name, GATEWAY_NAMESPACE), missing_ok=True)
    except Missing:
        return False
    except HelloKubeflowError:
        return None
    return True
