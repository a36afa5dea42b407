"""Where the cluster is reached: endpoints, `kubectl port-forward`, authentication, URLs.

What Kubeflow 26.03's gateway accepts (kubeflow/manifests 26.03, example/: oauth2-proxy's
session cookie, or a JWT of Dex's issuer, RequestAuthentication `dex-jwt`) is in
docs/cluster.md; no credential is ever printed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from hello_kubeflow.deploy.kserve_access import KServeInstall, route
from hello_kubeflow.errors import ClusterError, EndpointError
from hello_kubeflow.gateway.bearer import why_refused
from hello_kubeflow.http_client import send
from hello_kubeflow.kube.port_forward import port_forward
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

KFP_NAMESPACE = "kubeflow"
KFP_UI_SERVICE = "svc/ml-pipeline-ui"
KFP_UI_PORT = 80
KFP_LOCAL_PORT = 8080
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_SERVICE = "svc/istio-ingressgateway"
GATEWAY_PORT = 80
GATEWAY_LOCAL_PORT = 7777
KFP_GATEWAY_PATH = "/pipeline"
SELDON_API_VERSIONS = ("v1.0", "v0.1")
SELDON_SERVICE_PORT = 8000
KSERVE_SERVICE_PORT = 80

LOGIN_HELP = (
    "set HK_KUBEFLOW_USERNAME and HK_KUBEFLOW_PASSWORD to your Kubeflow login (the Dex "
    "email, e.g. user@example.com) and the task logs in as the dashboard does; or log in "
    "in a browser and set HK_KFP_COOKIE='oauth2_proxy_kubeflow=<value>' from its developer "
    "tools. Kubeflow's gateway takes bearer tokens (HK_KFP_TOKEN) only from its Dex: a "
    "Kubernetes service account token is refused there unless your admin added the "
    "cluster's issuer to Istio's RequestAuthentication"
)


@dataclass(frozen=True)
class Auth:
    """How requests prove who we are: a bearer token, a session cookie, or nothing (never shown)."""

    token: str | None = field(default=None, repr=False)
    cookie: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Auth:
        """The authentication `HK_KFP_TOKEN` / `HK_KFP_COOKIE` describe.

        Raises:
            ClusterError: the cookie is not `name=value`.
        """
        cookie = settings.kfp_cookie
        if cookie is not None and "=" not in cookie:
            raise ClusterError(
                "HK_KFP_COOKIE must be the whole cookie, name=value: e.g. "
                "oauth2_proxy_kubeflow=<value> (Kubeflow 1.9 and later) or "
                "authservice_session=<value> (older releases)"
            )
        token = settings.kfp_token
        if token is not None and token.lower().startswith("bearer "):
            token = token[len("bearer ") :].strip()
        return cls(token=token or None, cookie=cookie or None)

    @property
    def kind(self) -> str:
        """What is sent, for messages: never the value itself."""
        if self.token:
            return "a bearer token (HK_KFP_TOKEN)"
        if self.cookie:
            return f"the session cookie {self.cookie.split('=', 1)[0]} (HK_KFP_COOKIE)"
        return "no credentials"

    def headers(self) -> dict[str, str]:
        """The HTTP headers that carry this authentication."""
        headers: dict[str, str] = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookie:
            headers["Cookie"] = self.cookie
        return headers


def auth_failure_message(url: str, status: int, auth: Auth) -> str:
    """Say why `url` refused us (401/403 or a login redirect) and how to get in."""
    what = "redirected to the login page" if 300 <= status < 400 else f"answered {status}"
    if not (auth.token or auth.cookie):
        sent = "we sent no credentials (the gateway wants a login)"
    elif auth.token and status == 401:
        sent = f"we sent {auth.kind}, which it did not accept: {why_refused(auth.token)}"
    elif status == 403:
        sent = (
            f"we sent {auth.kind}, which it accepted, but this user may not do this "
            "(another user's profile namespace? check HK_NAMESPACE)"
        )
    else:
        sent = (
            f"we sent {auth.kind}, which it did not accept (expired? Kubeflow's session lasts 24 h)"
        )
    return f"{url} {what}; {sent}. To get in, {LOGIN_HELP}"


def describe_kfp_endpoint(kfp_endpoint: str | None, gateway_url: str | None) -> str:
    """Where the KFP API will be reached (HK_KFP_ENDPOINT, HK_GATEWAY_URL), contacting nothing."""
    if kfp_endpoint:
        return f"{kfp_endpoint} (HK_KFP_ENDPOINT)"
    if gateway_url:
        return f"{gateway_url}{KFP_GATEWAY_PATH} (the Kubeflow gateway, HK_GATEWAY_URL)"
    return _forwarded(KFP_UI_SERVICE, KFP_NAMESPACE)


def describe_gateway(gateway_url: str | None) -> str:
    """Where the served model will be reached (HK_GATEWAY_URL), contacting nothing."""
    if gateway_url:
        return f"{gateway_url} (HK_GATEWAY_URL)"
    return _forwarded(GATEWAY_SERVICE, GATEWAY_NAMESPACE)


def _forwarded(service: str, namespace: str) -> str:
    return (
        f"http://127.0.0.1:<local port> (kubectl port-forward {service} "
        f"-n {namespace}, started and stopped by the task)"
    )


@contextmanager
def kfp_endpoint(settings: Settings) -> Iterator[str]:
    """The KFP API base URL, forwarding a local port for the duration when needed.

    Raises:
        PrerequisiteError, ClusterError: as `port_forward`, when one is needed.
    """
    if settings.kfp_endpoint:
        yield settings.kfp_endpoint
    elif settings.gateway_url:
        yield settings.gateway_url + KFP_GATEWAY_PATH
    else:
        with port_forward(
            KFP_UI_SERVICE,
            KFP_NAMESPACE,
            KFP_UI_PORT,
            kubeconfig=settings.kubeconfig,
            context=settings.kube_context,
            preferred_port=KFP_LOCAL_PORT,
        ) as url:
            yield url


@contextmanager
def gateway(settings: Settings) -> Iterator[str]:
    """The gateway's base URL, forwarding a local port for the duration when needed.

    Raises:
        PrerequisiteError, ClusterError: as `port_forward`, when one is needed.
    """
    if settings.gateway_url:
        yield settings.gateway_url
        return
    with port_forward(
        GATEWAY_SERVICE,
        GATEWAY_NAMESPACE,
        GATEWAY_PORT,
        kubeconfig=settings.kubeconfig,
        context=settings.kube_context,
        preferred_port=GATEWAY_LOCAL_PORT,
    ) as url:
        yield url


@dataclass(frozen=True)
class ServingAddress:
    """Where predictions are posted, and the Host header the gateway routes on."""

    url: str
    host: str | None = None
    protocol: str = "seldon"

    def headers(self) -> dict[str, str]:
        """The Host header to send (KServe routes on it), if any."""
        return {"Host": self.host} if self.host else {}


def serving_address(
    base: str,
    serving: str,
    *,
    namespace: str,
    name: str,
    model_name: str,
    api_version: str = "v1.0",
    status_url: str | None = None,
    host: str = "",
    prefix: str = "",
) -> ServingAddress:
    """The predictions address for `serving` (`seldon` or `kserve`) behind the gateway `base`.

    KServe is routed on the Host header (and with its `pathTemplate` on a path prefix):
    `host`/`prefix` as read from the installed KServe (`deploy.kserve_access.route`), else
    KServe's defaults (`status_url`'s host and path, else `<name>.<namespace>.example.com`).

    Raises:
        ClusterError: for an unknown serving kind or Seldon API version.
    """
    base = base.rstrip("/")
    if serving == "kserve":
        if not host:
            found = route(KServeInstall(), "", namespace, name, status_url)
            host, prefix = found.host, found.prefix
        url = f"{base}{prefix}/v2/models/{model_name}/infer"
        return ServingAddress(url=url, host=host, protocol="v2")
    if serving != "seldon":
        raise ClusterError(f"unknown serving system {serving!r}: use seldon or kserve")
    if api_version not in SELDON_API_VERSIONS:
        raise ClusterError(
            f"unknown Seldon API version {api_version!r}: use one of "
            f"{', '.join(SELDON_API_VERSIONS)}"
        )
    return ServingAddress(url=f"{base}/seldon/{namespace}/{name}/api/{api_version}/predictions")


def check_access(
    url: str,
    auth: Auth,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 10.0,
    on_403: str = "",
) -> None:
    """Fail early, with how to log in, when the gateway refuses us or sends us to its login.

    Anything else (even a 405 for a GET on a POST endpoint) means we got through; an
    unreachable gateway is left to the caller's own retries and message.

    Args:
        url: the address to try, with `auth` and more `headers` (e.g. the Host to route on).
        timeout: seconds for the request; `on_403` is added to a 403's message.

    Raises:
        EndpointError: 401, 403, or a redirect (to the Dex / oauth2-proxy login page).
    """
    sent = {**auth.headers(), **(headers or {})}
    try:
        answer = send("GET", url, timeout=timeout, headers=sent, allow_redirects=False)
    except requests.RequestException:
        return
    if answer.status_code in (401, 403) or answer.is_redirect:
        message = auth_failure_message(url, answer.status_code, auth)
        raise EndpointError(message + on_403 if answer.status_code == 403 else message)


def model_service(serving: str, name: str, status: dict[str, Any]) -> tuple[str, int]:
    """The model's own Service and port, for a cluster without a gateway: from the resource's
    `status.address.url`, else Seldon's `<name>-default:8000` (our predictor is `default`) or
    KServe's `<name>-predictor:80`.
    """
    port = SELDON_SERVICE_PORT if serving == "seldon" else KSERVE_SERVICE_PORT
    fallback = f"{name}-default" if serving == "seldon" else f"{name}-predictor"
    address = str((status.get("address") or {}).get("url") or "")
    netloc = urlsplit(address).netloc if "://" in address else ""
    if not netloc:
        return fallback, port
    host, _, explicit = netloc.partition(":")
    return host.split(".", 1)[0] or fallback, int(explicit) if explicit.isdigit() else port
