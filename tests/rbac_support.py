"""Kubernetes RBAC as the API server decides it: aggregated ClusterRoles, and what they allow.

As kubernetes/kubernetes (the tag of v1.34) does it. Aggregation: the
clusterrole-aggregation controller adds the rules of every ClusterRole whose
labels match one of `aggregationRule`'s selectors
(pkg/controller/clusterroleaggregation/clusterroleaggregation_controller.go).
Matching: the RBAC authorizer's `RuleAllows` (plugin/pkg/auth/authorizer/rbac/
rbac.go), with pkg/apis/rbac/v1/evaluation_helpers.go's `VerbMatches`,
`APIGroupMatches`, `ResourceMatches` (`*` matches anything) and
`ResourceNameMatches` (a rule with `resourceNames` matches only requests
naming one of them). A subresource is checked as `<resource>/<subresource>`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from crd_schemas import UPSTREAM

from hello_kubeflow.install.install import RBAC_DIR

KUBEFLOW_EXAMPLE = UPSTREAM / "kubeflow-manifests-26.03/example.yaml"
"""Kubeflow 26.03's whole platform, rendered: its aggregated kubeflow-edit and friends."""
Call = tuple[str, str, str, str]
"""(API group, resource, verb, name): what the authorizer checks for one request."""


def cluster_roles(*paths: Path) -> dict[str, dict[str, Any]]:
    """name -> ClusterRole, from every file in `paths`."""
    return {
        doc["metadata"]["name"]: doc
        for path in paths
        for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader)
        if doc and doc.get("kind") == "ClusterRole"
    }


def kubeflow_roles(without: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Kubeflow 26.03's ClusterRoles plus ours (`inv setup` applies them), less `without`."""
    roles = cluster_roles(KUBEFLOW_EXAMPLE, *sorted(RBAC_DIR.glob("*.yaml")))
    for name in without:
        del roles[name]
    return roles


def aggregated(roles: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The rules of ClusterRole `name`, its aggregationRule resolved as the controller does."""
    role = roles[name]
    rules = list(role.get("rules") or [])
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        wanted = selector.get("matchLabels") or {}
        for other_name, other in roles.items():
            labels = (other.get("metadata") or {}).get("labels") or {}
            if other_name != name and all(labels.get(k) == v for k, v in wanted.items()):
                rules += aggregated(roles, other_name)
    return rules


def allowed(rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str) -> bool:
    """Whether one of `rules` (RBAC PolicyRules) allows the request."""

    def has(field: str, value: str) -> bool:
        values = rule.get(field) or []
        return value in values or "*" in values

    for rule in rules:
        names = rule.get("resourceNames") or []
        matches = has("apiGroups", group) and has("resources", resource) and has("verbs", verb)
        if matches and (not names or name in names):
            return True
    return False


def refused(rules: list[dict[str, Any]], calls: Iterable[Call]) -> list[Call]:
    """The calls `rules` do not allow, sorted."""
    return [call for call in sorted(set(calls)) if not allowed(rules, *call)]


def calls_of(request: Any) -> set[Call]:
    """(group, resource, verb, name) the authorizer checks for one API request (kmock's).

    A server-side apply is a PATCH that creates what is missing: it needs both
    verbs. API discovery (no resource) is allowed to every authenticated user:
    no call. A subresource is checked as `<resource>/<subresource>`.
    """
    if request.resource is None or request.resource.plural is None:
        return set()
    method = str(request.method.value)
    if method == "GET":
        verbs = ["get" if request.name else "list"]
    elif method == "PATCH":
        verbs = ["patch", "create"]
    else:
        verbs = [{"POST": "create", "DELETE": "delete", "PUT": "update"}[method]]
    resource = request.resource.plural
    if getattr(request, "subresource", None):
        resource += f"/{request.subresource}"
    return {(request.resource.group, resource, verb, request.name or "") for verb in verbs}
