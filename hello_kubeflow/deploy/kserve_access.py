"""Reaching a KServe InferenceService through Istio: its route, and the policy that lets us in.

The route depends on the installed KServe's version and deployment mode, read from the
cluster, never assumed (docs/cluster.md tabulates them).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from kubernetes import client
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from hello_kubeflow.deploy.model_manifests import LABELS, SERVING_APIS, ServingApi
from hello_kubeflow.deploy.serving_api import Missing, apply, call, installed
from hello_kubeflow.errors import EndpointError, HelloKubeflowError
from hello_kubeflow.http_client import send

log = logging.getLogger(__name__)

# The controller (container `manager`, image `kserve/kserve-controller:v0.20.0`) is in
# `kserve` in kserve/kserve v0.20.0's kserve.yaml, in `kubeflow` in kubeflow/manifests 26.03.
KSERVE_NAMESPACES = ("kserve", "kubeflow")
CONTROLLER = "kserve-controller-manager"
CONFIG_MAP = "inferenceservice-config"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
ISVC_LABEL = SERVING_APIS["kserve"].pod_label
# Not a serving kind, but the same API shape; the policy selects the model's pods by ISVC_LABEL.
AUTHORIZATION_POLICY = ServingApi(
    "security.istio.io",
    "v1beta1",
    "authorizationpolicies",
    "AuthorizationPolicy",
    pod_label=ISVC_LABEL,
)
# KServe 0.16 renamed the modes and reads the old names as the new (kserve v0.15.2 knows only
# the old, pkg/constants/constants.go; v0.16.0 pkg/apis/serving/v1beta1/configmap.go and
# controller utils.go; v0.20.0 `ParseDeploymentMode`).
LEGACY_MODES = {"RawDeployment": "Standard", "Serverless": "Knative"}
RENAMED_IN = (0, 16)
DEFAULT_DOMAIN = "example.com"
ACCESS_POLL = 5.0  # seconds between tries, as the manifests' test polls


@dataclass(frozen=True)
class KServeInstall:
    """What the installed KServe says about routing ("" where the cluster did not say)."""

    version: str = ""
    default_mode: str = ""
    ingress_domain: str = DEFAULT_DOMAIN
    domain_template: str = "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}"
    path_template: str = ""

    def mode_name(self, mode: str) -> str:
        """`mode` as this version spells it (`RawDeployment` before KServe 0.16)."""
        found = _version_tuple(self.version)
        if found and found < RENAMED_IN:
            return {new: old for old, new in LEGACY_MODES.items()}.get(mode, mode)
        return mode


@dataclass(frozen=True)
class KServeRoute:
    """Where the gateway sends us to the model: a path prefix and the Host to send."""

    host: str
    prefix: str = ""


def normalize_mode(mode: str) -> str:
    """A deployment mode under its current name (kserve v0.20.0 `ParseDeploymentMode`)."""
    return LEGACY_MODES.get(mode, mode)


def read_install(api: client.ApiClient) -> KServeInstall:
    """Read the controller's version and the routing configuration from the cluster.

    Best effort: what cannot be read (RBAC, another layout) keeps its default.
    """
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    for namespace in KSERVE_NAMESPACES:
        try:
            deployment = call(
                f"reading Deployment {namespace}/{CONTROLLER}",
                functools.partial(apps.read_namespaced_deployment, CONTROLLER, namespace),
                missing_ok=True,
            )
        except Missing:
            continue
        except HelloKubeflowError as exc:
            log.info("cannot read KServe's controller: %s", exc)
            return KServeInstall()
        version = _controller_version(deployment)
        install = _install_of(version, _config_data(core, namespace))
        mode = install.mode_name(install.default_mode) or "(not set)"
        shown = version or "(version unknown)"
        log.info("KServe %s in %s, default deployment mode %s", shown, namespace, mode)
        return install
    return KServeInstall()


def _controller_version(deployment: Any) -> str:
    """The tag of the controller Deployment's kserve-controller image ("": none)."""
    pod = deployment.spec.template.spec if deployment.spec else None
    images = [c.image or "" for c in (pod.containers if pod else None) or []]
    return next((_tag(i) for i in images if "kserve-controller" in i), "")


def _config_data(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    """KServe's ConfigMap in `namespace`, as its data ({}: missing or unreadable)."""
    try:
        config = call(
            f"reading ConfigMap {namespace}/{CONFIG_MAP}",
            functools.partial(core.read_namespaced_config_map, CONFIG_MAP, namespace),
            missing_ok=True,
        )
        return dict(config.data or {})
    except (Missing, HelloKubeflowError):
        return {}


def _install_of(version: str, data: dict[str, str]) -> KServeInstall:
    """The install described by the controller's version and its ConfigMap's data."""
    deploy, ingress = _json(data.get("deploy")), _json(data.get("ingress"))
    return KServeInstall(
        version=version,
        default_mode=normalize_mode(str(deploy.get("defaultDeploymentMode") or "")),
        ingress_domain=str(ingress.get("ingressDomain") or DEFAULT_DOMAIN),
        domain_template=str(ingress.get("domainTemplate") or KServeInstall.domain_template),
        path_template=str(ingress.get("pathTemplate") or ""),
    )


def deployment_mode(resource: dict[str, Any], install: KServeInstall) -> str:
    """The resource's mode: its status, else its annotation, else the install's default."""
    status = resource.get("status") or {}
    annotations = (resource.get("metadata") or {}).get("annotations") or {}
    mode = status.get("deploymentMode") or annotations.get(MODE_ANNOTATION) or install.default_mode
    return normalize_mode(str(mode or ""))


def route(
    install: KServeInstall, mode: str, namespace: str, name: str, status_url: str | None = None
) -> KServeRoute:
    """The Host and path prefix the gateway routes this InferenceService on.

    `status.url` wins (a `pathTemplate` makes it path-based: kserve v0.20.0,
    reconcilers/ingress/ingress_reconciler.go `getServiceUrl`, `createIngress`); else
    Standard mode is host only (kubeflow/manifests 26.03 tests/kserve_test.sh, kserve#5090).
    """
    if status_url and "://" in status_url:
        parts = urlsplit(status_url)
        return KServeRoute(parts.netloc, parts.path.rstrip("/"))
    values = {"Name": name, "Namespace": namespace, "IngressDomain": install.ingress_domain}
    if mode == "Standard":
        return KServeRoute(_render(install.domain_template, values))
    if install.path_template:
        return KServeRoute(
            install.ingress_domain, _render(install.path_template, values).rstrip("/")
        )
    return KServeRoute(f"{name}.{namespace}.{install.ingress_domain}")


def authorization_policy(namespace: str, name: str) -> dict[str, Any]:
    """The policy kubeflow/manifests 26.03's tests/kserve_test.sh ("Test 7") gives a model.

    In a profile namespace the mesh-wide deny-all answers 403 without it (manifests#3013,
    kserve#4011); the selector "works for both serverless and raw deployment modes", and
    the gateway still checks the login first.
    """
    return {
        "apiVersion": AUTHORIZATION_POLICY.api_version,
        "kind": AUTHORIZATION_POLICY.kind,
        "metadata": {"name": policy_name(name), "namespace": namespace, "labels": LABELS},
        "spec": {"action": "ALLOW", "rules": [{}], "selector": {"matchLabels": {ISVC_LABEL: name}}},
    }


def policy_name(name: str) -> str:
    """The policy's name for the InferenceService `name`."""
    return f"allow-{name}"


def ensure_policy(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Create or refresh the InferenceService's AuthorizationPolicy (False: no Istio there).

    Raises:
        PrerequisiteError: we may not write AuthorizationPolicies there (RBAC).
        DeploymentError: the API server refused it.
    """
    if not installed(api, AUTHORIZATION_POLICY):
        return False
    apply(api, authorization_policy(namespace, name))
    log.info("applied AuthorizationPolicy %s/%s", namespace, policy_name(name))
    return True


def wait_until_allowed(
    url: str,
    headers: dict[str, str],
    *,
    namespace: str,
    name: str,
    timeout: float,
    request_timeout: float,
    poll: float | None = None,
) -> None:
    """Poll `url` until the answer is no longer 403 (the policy reached the sidecar).

    Raises:
        EndpointError: still 403 after `timeout` seconds, naming the policy to check.
    """
    poll = ACCESS_POLL if poll is None else poll
    where = f"InferenceService {namespace}/{name}"

    def still_denied(status: int) -> bool:
        return status == 403

    def said(state: Any) -> None:
        log.info(
            "%s still answers 403 (RBAC: access denied): Istio has not given its sidecar "
            "the AuthorizationPolicy yet; trying again in %.0f s (up to %.0f s, HK_ACCESS_WAIT)",
            where,
            poll,
            timeout,
        )

    @retry(
        retry=retry_if_result(still_denied),
        wait=wait_fixed(poll),
        stop=stop_after_delay(timeout),
        before_sleep=said,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else 403,
    )
    def status() -> int:
        try:
            return send(
                "GET", url, timeout=request_timeout, headers=headers, allow_redirects=False
            ).status_code
        except requests.RequestException:
            return 0  # not a 403: the query's own retries and messages take it from here

    if still_denied(status()):
        raise EndpointError(
            f'{where} still answers 403 "RBAC: access denied" after {timeout:.0f} s. '
            f"Check its policy: `kubectl get authorizationpolicy -n {namespace} "
            f"{policy_name(name)} -o yaml` (it must select pods labelled {ISVC_LABEL}={name}); "
            "raise HK_ACCESS_WAIT if Istio is slow; if the policy is there, your login may "
            "not reach this profile's namespace (HK_NAMESPACE)"
        )


def _render(template: str, values: dict[str, str]) -> str:
    """A Go template of `{{ .Field }}` placeholders, as KServe's config writes them."""
    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), template)


def _tag(image: str) -> str:
    """The version in an image reference's tag: `kserve/kserve-controller:v0.16.0` -> `0.16.0`."""
    tail = image.rsplit("/", 1)[-1].split("@", 1)[0]
    return tail.partition(":")[2].removeprefix("v")


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = re.match(r"(\d+)\.(\d+)", version)
    return (int(numbers.group(1)), int(numbers.group(2))) if numbers else ()


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
