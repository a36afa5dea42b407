"""An API server emulator strict where installing upstream's manifests depends on it.

`ApiServer` is `emulators.ClusterEmulator` plus what a real API server does
that an install meets, each cited:

- **Discovery serves only what exists** (kubernetes/kubernetes
  `api/discovery/api__v1.json`, `apis__apps__v1.json`, `apis__rbac.authorization.k8s.io__v1.json`,
  ... for the built-in kinds below). A request for a kind that is neither built
  in nor defined by an established CRD gets 404 NotFound "the server could not
  find the requested resource": a custom resource applied before its CRD is
  refused, so the install's order is tested.
- **CRDs**: the apiextensions-apiserver serves a CRD's kinds once its
  `Established` condition is true (Kubernetes docs, "Extend the Kubernetes API
  with CustomResourceDefinitions": "Established: the API server has started
  serving the CRD"); here that happens `establish_delay` seconds after it is
  applied. Custom resources are validated against the version's
  `openAPIV3Schema` (`crd_schemas.validate`): 422 Invalid with the field's
  problem; a field not declared in the schema is refused under
  `fieldValidation=Strict` (400 BadRequest, "field not declared in schema")
  and pruned otherwise (docs: "Field pruning").
- **NamespaceLifecycle admission**: an object in a namespace that does not
  exist is refused, 404 `namespaces "x" not found` (Kubernetes docs,
  "Admission Controllers", NamespaceLifecycle). `default`, `kube-system`,
  `kube-public` and `kube-node-lease` exist from the start.
- **Admission webhooks**: a webhook whose `failurePolicy` is Fail and whose
  rules match the request is called; until its server answers (here:
  `webhook_delay` seconds after its configuration is applied) the request is
  refused with 500 InternalError `failed calling webhook "NAME": ... connect:
  connection refused` (docs, "Dynamic Admission Control", failure policy).
  Only `rules` and `objectSelector.matchLabels` are matched; namespace
  selectors are not evaluated (the webhook is then called more often than
  on a real cluster, which only makes the test stricter).
- **Pod logs** (`GET .../pods/NAME/log`): what `logs[(namespace, pod, container)]` holds.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import aiohttp.web
import kmock
from crd_schemas import crd_schemas, validate
from emulators import ClusterEmulator
from kmock._internal import enums
from kmock._internal.k8s import KubernetesError

# (group/version, plural, Kind, namespaced): the built-in kinds upstream's manifests use, as
# kubernetes/kubernetes api/discovery/*.json lists them.
BUILT_IN = (
    ("v1", "namespaces", "Namespace", False),
    ("v1", "configmaps", "ConfigMap", True),
    ("v1", "secrets", "Secret", True),
    ("v1", "services", "Service", True),
    ("v1", "serviceaccounts", "ServiceAccount", True),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("v1", "pods", "Pod", True),
    ("v1", "nodes", "Node", False),
    ("apps/v1", "deployments", "Deployment", True),
    ("apps/v1", "statefulsets", "StatefulSet", True),
    ("apps/v1", "daemonsets", "DaemonSet", True),
    ("apps/v1", "replicasets", "ReplicaSet", True),
    ("batch/v1", "jobs", "Job", True),
    ("batch/v1", "cronjobs", "CronJob", True),
    ("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True),
    ("networking.k8s.io/v1", "ingresses", "Ingress", True),
    ("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", False),
    ("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ("rbac.authorization.k8s.io/v1", "roles", "Role", True),
    ("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", True),
    (
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    (
        "admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    (
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
    ),
)
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_CRDS = kmock.resource("apiextensions.k8s.io/v1/customresourcedefinitions")
_NAMESPACES = kmock.resource("v1/namespaces")
_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)$")
_WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def _refuse(status: int, reason: str, message: str) -> KubernetesError:
    return KubernetesError(status=status, reason=reason, message=message, details={})


class ApiServer(ClusterEmulator):  # type: ignore[misc]
    """`ClusterEmulator` with discovery, CRDs, schemas, namespaces and webhooks as above."""

    establish_delay = 0.2
    webhook_delay = 0.3

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.kinds: dict[Any, tuple[str, str, bool]] = {}  # resource -> (apiVersion, kind, ns'd)
        self.schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self.establishing: dict[str, float] = {}  # CRD name -> when it is established
        self.crd_resources: dict[str, list[Any]] = {}  # CRD name -> its resources
        self.webhooks: list[dict[str, Any]] = []
        self.logs: dict[tuple[str, str, str], str] = {}
        self.refusals: list[tuple[int, str]] = []
        for group_version, plural, kind, namespaced in BUILT_IN:
            self._serve_kind(group_version, plural, kind, namespaced)
        for name in INITIAL_NAMESPACES:
            self.objects[_NAMESPACES, None, name] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name},
                "status": {"phase": "Active"},
            }
        self[lambda r: r.subresource == "log"] << self._serve_log

    def _serve_kind(self, group_version: str, plural: str, kind: str, namespaced: bool) -> Any:
        resource = kmock.resource(f"{group_version}/{plural}")
        self.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=namespaced)
        self.kinds[resource] = (group_version, kind, namespaced)
        return resource

    def _serve_log(self, request: Any) -> bytes:
        container = str(request.params.get("container", ""))
        text = self.logs.get((str(request.namespace), str(request.name), container), "")
        lines = text.splitlines()
        tail = int(request.params.get("tailLines", 0) or 0)
        return "\n".join(lines[-tail:] if tail else lines).encode()

    # ---- the request path

    async def _handle(self, request: Any) -> Any:
        self._establish_due()
        whole = _NAMESPACE_PATH.match(str(request.url.path))
        if whole and (request.resource is None or request.resource.plural is None):
            # kmock reads this path as a namespace scope, not as the Namespace object
            return await self._namespace(request, whole.group(1))
        writes = (enums.action.CREATE, enums.action.UPDATE)
        if (
            request.resource is not None
            and request.action in writes
            and request.subresource is None
        ):
            try:
                self._admit(request)
            except KubernetesError as refused:
                self.refusals.append((refused.status, str(refused.message)))
                raise
        response = await super()._handle(request)
        if request.resource == _CRDS and request.action in writes and request.name:
            self._crd_applied(str(request.name))
        if request.action in writes and (request.data or {}).get("kind") in _WEBHOOK_KINDS:
            self._webhooks_applied(request.data)
        return response

    def _admit(self, request: Any) -> None:
        if request.resource not in self.kinds:
            raise _refuse(404, "NotFound", "the server could not find the requested resource")
        group_version, kind, namespaced = self.kinds[request.resource]
        body = request.data if isinstance(request.data, dict) else {}
        namespace = request.namespace or (body.get("metadata") or {}).get("namespace")
        if namespaced and not self._namespace_exists(namespace):
            raise _refuse(404, "NotFound", f'namespaces "{namespace}" not found')
        self._call_webhooks(request, group_version, body)
        if kind == "CustomResourceDefinition" or (group_version, kind) in self.schemas:
            # status is a subresource: writes to the object leave it alone (docs, CRDs,
            # "Status subresource"; the CRD's own status belongs to apiextensions)
            body.pop("status", None)
        schema = self.schemas.get((group_version, kind))
        if schema is None:
            return
        invalid, unknown = validate(body, schema)
        name = f'{kind}.{request.resource.group} "{request.name or ""}"'
        if invalid:
            raise _refuse(422, "Invalid", f"{name} is invalid: {', '.join(invalid)}")
        if unknown and str(request.params.get("fieldValidation", "")) == "Strict":
            fields = ", ".join(f".{u}: field not declared in schema" for u in unknown)
            raise _refuse(
                400,
                "BadRequest",
                f"failed to create typed patch object ({group_version}, Kind={kind}): {fields}",
            )
        for path in unknown:  # pruned, as the API server prunes unknown fields
            _prune(body, path.split("."))

    async def _namespace(self, request: Any, name: str) -> aiohttp.web.StreamResponse:
        """GET or apply one Namespace (`/api/v1/namespaces/NAME`), made Active at once."""
        key = (_NAMESPACES, None, name)
        method = str(request.method).upper().removeprefix("METHOD.")
        if method == "PATCH":
            body = dict(request.data or {})
            if key in self.objects and not self.objects[key].deleted:
                self.objects[key].patch(body)
            else:
                self.objects[key] = {**body, "status": {"phase": "Active"}}
        if key not in self.objects or self.objects[key].deleted:
            error = _refuse(404, "NotFound", f'namespaces "{name}" not found')
            return await self._render_error(error)
        return aiohttp.web.json_response(dict(self.objects[key].raw))

    def _namespace_exists(self, namespace: str | None) -> bool:
        key = (_NAMESPACES, None, namespace)
        return key in self.objects and not self.objects[key].deleted

    # ---- CRDs

    def _crd_applied(self, name: str) -> None:
        key = (_CRDS, None, name)
        if key not in self.objects or self.objects[key].deleted or name in self.crd_resources:
            return
        self.establishing.setdefault(name, time.monotonic() + self.establish_delay)
        self._establish_due()

    def _establish_due(self) -> None:
        now = time.monotonic()
        for name, when in list(self.establishing.items()):
            if when > now:
                continue
            del self.establishing[name]
            crd = self.objects[_CRDS, None, name]
            spec = crd["spec"]
            plural, kind = spec["names"]["plural"], spec["names"]["kind"]
            namespaced = spec.get("scope") == "Namespaced"
            self.crd_resources[name] = [
                self._serve_kind(f"{spec['group']}/{v['name']}", plural, kind, namespaced)
                for v in spec.get("versions") or []
                if v.get("served", True)
            ]
            self.schemas.update(crd_schemas(dict(crd.raw)))
            crd.patch(
                {
                    "status": {
                        "acceptedNames": dict(spec["names"]),
                        "conditions": [
                            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                            {
                                "type": "Established",
                                "status": "True",
                                "reason": "InitialNamesAccepted",
                            },
                        ],
                    }
                }
            )

    # ---- webhooks

    def _webhooks_applied(self, config: dict[str, Any]) -> None:
        serving_at = time.monotonic() + self.webhook_delay
        name = config["metadata"]["name"]
        self.webhooks = [w for w in self.webhooks if w["config"] != name]
        for hook in config.get("webhooks") or []:
            self.webhooks.append(
                {
                    "config": name,
                    "name": hook.get("name", name),
                    "rules": hook.get("rules") or [],
                    "fail": hook.get("failurePolicy", "Fail") == "Fail",
                    "labels": (hook.get("objectSelector") or {}).get("matchLabels") or {},
                    "serving_at": serving_at,
                }
            )

    def _call_webhooks(self, request: Any, group_version: str, body: dict[str, Any]) -> None:
        group, _, version = group_version.rpartition("/")
        operation = "CREATE" if request.action == enums.action.CREATE else "UPDATE"
        labels = (body.get("metadata") or {}).get("labels") or {}
        now = time.monotonic()
        for hook in self.webhooks:
            if not hook["fail"] or hook["serving_at"] <= now:
                continue
            if any(labels.get(k) != v for k, v in hook["labels"].items()):
                continue
            if any(
                _rule_matches(r, group, version, request.resource.plural, operation)
                for r in hook["rules"]
            ):
                raise _refuse(
                    500,
                    "InternalError",
                    f'Internal error occurred: failed calling webhook "{hook["name"]}": failed '
                    "to call webhook: dial tcp 10.96.0.1:443: connect: connection refused",
                )

    # ---- what the tests read

    def applied(self) -> dict[tuple[str, str, str | None, str], dict[str, Any]]:
        """(apiVersion, kind, namespace, name) -> the object, for everything stored."""
        found = {}
        for (resource, namespace, name), obj in list(self.objects.items()):
            if obj.deleted or resource not in self.kinds:
                continue
            group_version, kind, _ = self.kinds[resource]
            found[(group_version, kind, namespace, name)] = copy.deepcopy(dict(obj.raw))
        return found


def _rule_matches(rule: dict[str, Any], group: str, version: str, plural: str, op: str) -> bool:
    def has(values: list[str] | None, value: str) -> bool:
        return bool(values) and ("*" in values or value in values)  # type: ignore[operator]

    return (
        has(rule.get("apiGroups"), group)
        and has(rule.get("apiVersions"), version)
        and has([r.split("/")[0] for r in rule.get("resources") or []], plural)
        and has(rule.get("operations"), op)
    )


def _prune(body: dict[str, Any], path: list[str]) -> None:
    node: Any = body
    for part in path[:-1]:
        name, _, index = part.partition("[")
        node = node.get(name) if isinstance(node, dict) else None
        if index and isinstance(node, list):
            node = node[int(index.rstrip("]"))]
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)
