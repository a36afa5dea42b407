"""Calling the Kubernetes API for the served model: apply, read, discover, with clear errors."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hello_kubeflow.deploy.model_manifests import SERVING_APIS, ServingApi
from hello_kubeflow.errors import DeploymentError, PrerequisiteError
from hello_kubeflow.kube.client import (
    FIELD_MANAGER,
    api_prefix,
    api_retrying,
    describe_api_error,
    status_message,
)

T = TypeVar("T")
RETRY_SECONDS = 60.0
_PLURALS = {
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "AuthorizationPolicy": "authorizationpolicies",
}


class Missing(Exception):
    """The object (or its whole resource type) is not there."""


def call(what: str, request: Callable[[], T], *, missing_ok: bool = False) -> T:
    """One API call, transient errors retried.

    Args:
        what: names the call in messages ("reading SeldonDeployment kubeflow/x").
        request: the call; `missing_ok`: raise `Missing` on 404 instead of an error.

    Raises:
        Missing: 404 and `missing_ok`.
        PrerequisiteError: 404 (the resource type is not installed), 401/403 (RBAC).
        DeploymentError: the API server refused the request or stopped answering.
    """
    try:
        return api_retrying(RETRY_SECONDS, what)(request)
    except ApiException as exc:
        status = int(exc.status or 0)
        if status == 404 and missing_ok:
            raise Missing(what) from None
        if status == 404:
            raise PrerequisiteError(
                f"{what}: the API server has no such resource type (404). Install Seldon "
                "Core or KServe with `inv setup`, or set HK_SERVING to the one installed"
            ) from None
        if status in (401, 403):
            raise PrerequisiteError(
                f"{what}: forbidden ({describe_api_error(exc)}). The pipeline's service "
                "account needs the RBAC in hello_kubeflow/manifests (applied by `inv setup`); "
                "from a workstation, check `kubectl auth can-i`"
            ) from None
        raise DeploymentError(f"{what}: {describe_api_error(exc)}: {status_message(exc)}") from None
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        # transient errors that outlived their retries
        raise DeploymentError(
            f"{what}: the Kubernetes API did not answer ({describe_api_error(exc)}); "
            "check the cluster with `inv status`"
        ) from None


def apply(api: client.ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply one object (creating or updating it); return it as stored.

    Raises:
        PrerequisiteError: its resource type is not installed, or we may not write it.
        DeploymentError: the API server rejected it.
    """
    kind, meta = str(obj["kind"]), obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    api_version = str(obj["apiVersion"])
    prefix = api_prefix(api_version)
    plural = _PLURALS.get(kind) or next(a.plural for a in SERVING_APIS.values() if a.kind == kind)

    def patch() -> dict[str, Any]:
        result = api.call_api(
            f"{prefix}/namespaces/{namespace}/{plural}/{name}",
            "PATCH",
            query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            header_params={
                "Content-Type": "application/apply-patch+yaml",
                "Accept": "application/json",
            },
            body=obj,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
        return dict(result)

    return call(f"applying {kind} {namespace}/{name}", patch)


def read_deployment(
    api: client.ApiClient, serving: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """The deployed resource as the cluster reports it, or None when there is none."""
    target = SERVING_APIS[serving]
    where = (target.group, target.version, namespace, target.plural, name)
    read = client.CustomObjectsApi(api).get_namespaced_custom_object
    try:
        what = f"reading {target.kind} {namespace}/{name}"
        return call(what, lambda: dict(read(*where)), missing_ok=True)
    except Missing:
        return None


def installed(api: client.ApiClient, target: ServingApi) -> bool:
    """Whether the cluster serves `target`'s resource type (API discovery, no RBAC needed)."""
    custom = client.CustomObjectsApi(api)
    try:
        found = call(
            f"looking for {target.kind} in the cluster",
            lambda: custom.get_api_resources(target.group, target.version),
            missing_ok=True,
        )
    except Missing:
        return False
    return any(r.name == target.plural for r in found.resources or [])
