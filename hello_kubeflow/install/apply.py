"""Apply rendered manifests through the Kubernetes API: server-side apply, in a working order.

As `kubectl apply --server-side --force-conflicts` (Kubernetes docs, "Server-Side
Apply"), finding each kind's path by the API server's discovery documents. What heals
by waiting (a CRD not established, a webhook not serving, 404, 409, 429, 5xx) is
retried in rounds until a deadline; any other refusal names the object at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception_type, stop_after_delay

from hello_kubeflow.errors import ApplyError, ManifestError
from hello_kubeflow.install.components import Manifest, object_name
from hello_kubeflow.kube.client import FIELD_MANAGER, api_prefix, describe_api_error, is_transient
from hello_kubeflow.retry import Backoff, log_retry

log = logging.getLogger(__name__)

APPLY_DEADLINE = 900.0
"""Seconds to keep retrying the objects of one step through failures that heal."""
ESTABLISH_DEADLINE = 120.0
"""Seconds for new CRDs to be established before their custom resources are applied."""
APPLY_PATCH = "application/apply-patch+yaml"
_CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
_FIRST_KINDS = ("Namespace", "CustomResourceDefinition")


class TransientApplyError(Exception):
    """Some objects could not be applied yet, for reasons that heal: retried."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


APPLY_BACKOFF = Backoff(initial=2.0, maximum=20.0)
"""Waits between rounds of applying what failed."""


@dataclass(frozen=True)
class Resource:
    """Where objects of one kind live in the API (from discovery)."""

    group_version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str) -> str:
        """The object's URL path."""
        base = api_prefix(self.group_version)
        where = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"{base}{where}/{self.plural}/{name}"


@dataclass
class Applier:
    """Applies objects server-side through one API client, as `FIELD_MANAGER`."""

    api: client.ApiClient
    backoff: Backoff = APPLY_BACKOFF
    _discovered: dict[str, dict[str, Resource] | None] = field(default_factory=dict)

    def apply_in_order(
        self, objects: Sequence[Manifest], what: str, *, deadline: float = APPLY_DEADLINE
    ) -> int:
        """Namespaces and CRDs first, then wait until the CRDs are established, then the rest.

        Args:
            objects: the step's objects, in upstream's order.
            what: names the step in messages.
            deadline: seconds to retry failures that heal, per phase.

        Returns:
            How many objects were applied.

        Raises:
            ApplyError: an object was refused for good, or still failed at the deadline.
            ManifestError: a namespaced object names no namespace.
        """
        first = [o for o in objects if o.get("kind") in _FIRST_KINDS]
        rest = [o for o in objects if o.get("kind") not in _FIRST_KINDS]
        self.apply(first, what, deadline=deadline)
        crds = [o for o in first if (o.get("apiVersion"), o.get("kind")) == _CRD]
        if crds:
            self.wait_established(crds, what, deadline=min(deadline, ESTABLISH_DEADLINE))
        self.apply(rest, what, deadline=deadline)
        return len(objects)

    def apply(
        self, objects: Sequence[Manifest], what: str, *, deadline: float = APPLY_DEADLINE
    ) -> None:
        """Apply every object, retrying those that fail in ways that heal (raises as above)."""
        pending = list(objects)
        failures: dict[str, str] = {}
        if not pending:
            return

        def one_round() -> None:
            failures.clear()
            still = []
            for obj in pending:
                try:
                    self._apply_one(obj)
                except TransientApplyError as exc:
                    still.append(obj)
                    failures[object_name(obj)] = str(exc)
            pending[:] = still
            if still:
                shown = "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:3])
                raise TransientApplyError(f"{len(still)} not applied yet ({shown})")

        try:
            self._retrying(deadline, f"applying {what}")(one_round)
        except TransientApplyError:
            lines = "\n".join(f"  {k}: {v}" for k, v in list(failures.items())[:10])
            more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
            raise ApplyError(
                f"applying {what}: {len(failures)} object(s) still failed after {deadline:.0f} s:"
                f"\n{lines}{more}\nA webhook or CRD that never becomes ready points at its "
                "controller's pods (inv status); fix that, then run inv setup again (it is "
                "safe to repeat)."
            ) from None
        log.info("applied %s: %d objects", what, len(objects))

    def wait_established(
        self, crds: Sequence[Manifest], what: str, *, deadline: float = ESTABLISH_DEADLINE
    ) -> None:
        """Wait until each CRD has condition Established=True (ApplyError at the deadline)."""
        waiting = {str(c["metadata"]["name"]) for c in crds}

        def check() -> None:
            for name in sorted(waiting):
                crd = self._get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conditions = (crd.get("status") or {}).get("conditions") or []
                if any(
                    c.get("type") == "Established" and c.get("status") == "True" for c in conditions
                ):
                    waiting.discard(name)
            if waiting:
                raise TransientApplyError(f"{len(waiting)} CRD(s) not established yet")

        try:
            self._retrying(deadline, f"waiting for the CRDs of {what}", 0.2, outcome="")(check)
        except TransientApplyError:
            raise ApplyError(
                f"the CRDs of {what} were not established after {deadline:.0f} s: "
                f"{', '.join(sorted(waiting))}. See `kubectl get crd NAME -o yaml` (status."
                "conditions: NamesAccepted may name a clash with another CRD)."
            ) from None
        self._discovered.clear()  # new kinds are served now
        log.info("%s: %d CRDs established", what, len(crds))

    def _apply_one(self, obj: Manifest) -> None:
        meta = obj.get("metadata") or {}
        resource = self.resource(str(obj["apiVersion"]), str(obj["kind"]))
        if resource is None:
            raise TransientApplyError(
                f"no kind {obj['kind']} is served in {obj['apiVersion']} yet (is its CRD applied?)"
            )
        namespace = meta.get("namespace")
        if resource.namespaced and not namespace:
            raise ManifestError(f"{object_name(obj)} is namespaced but names no namespace")
        try:
            self._call(
                "PATCH",
                resource.path(namespace, str(meta["name"])),
                object_name(obj),
                query_params=[
                    ("fieldManager", FIELD_MANAGER),
                    ("force", "true"),
                    ("fieldValidation", "Strict"),
                ],
                header_params={"Content-Type": APPLY_PATCH, "Accept": "application/json"},
                body=obj,
            )
        except TransientApplyError as exc:
            if exc.status == 404:  # its CRD may be new: discover its group again
                self._discovered.pop(str(obj["apiVersion"]), None)
            raise

    def resource(self, api_version: str, kind: str) -> Resource | None:
        """Where `kind` of `api_version` lives, from discovery (None: not served)."""
        if api_version not in self._discovered:
            self._discovered[api_version] = self._discover(api_version)
        found = self._discovered[api_version]
        if found is None or kind not in found:
            self._discovered.pop(api_version, None)  # ask again next time
            return None
        return found[kind]

    def _discover(self, api_version: str) -> dict[str, Resource] | None:
        path = api_prefix(api_version)
        try:
            listing = self._get(path)
        except TransientApplyError:
            return None
        kinds: dict[str, Resource] = {}
        for entry in listing.get("resources") or []:
            name = str(entry.get("name", ""))
            if "/" in name or not entry.get("kind"):  # a subresource
                continue
            kinds[str(entry["kind"])] = Resource(api_version, name, bool(entry.get("namespaced")))
        return kinds

    def _get(self, path: str) -> dict[str, Any]:
        response = self._call(
            "GET", path, f"GET {path}", header_params={"Accept": "application/json"}
        )
        found: dict[str, Any] = json.loads(response[0].data)
        return found

    def _call(self, method: str, path: str, what: str, **request: Any) -> Any:
        """One API call: what heals raises TransientApplyError, a refusal ApplyError."""
        try:
            return self.api.call_api(
                path, method, auth_settings=["BearerToken"], _preload_content=False, **request
            )
        except ApiException as exc:
            message = _status_message(exc)
            if _heals(exc, message):
                raise TransientApplyError(f"HTTP {exc.status}: {message}", exc.status) from None
            raise ApplyError(
                f"the API server refused {what} (HTTP {exc.status}): {message}"
            ) from None
        except Exception as exc:
            if is_transient(exc):
                raise TransientApplyError(describe_api_error(exc)) from None
            raise

    def _retrying(
        self, deadline: float, what: str, initial: float | None = None, outcome: str = " failed"
    ) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(TransientApplyError),
            wait=self.backoff.wait(initial),
            stop=stop_after_delay(deadline),
            reraise=True,
            before_sleep=log_retry(log, what, level=logging.INFO, describe=str, outcome=outcome),
            sleep=time.sleep,
        )


def _status_message(exc: ApiException) -> str:
    """The `message` of the Status the API server answered with, else the HTTP reason."""
    try:
        status = json.loads(exc.body or b"{}")
    except (TypeError, ValueError):
        status = {}
    return str(status.get("message") or exc.reason or "no message").strip()


def _heals(exc: ApiException, message: str) -> bool:
    """Whether a refused call may pass later: see the module docstring."""
    status = int(exc.status or 0)
    # 404: a kind whose CRD is new, a namespace still being created; 409: a write conflict
    if status in (404, 409) or (status == 500 and "failed calling webhook" in message):
        return True
    return is_transient(exc)
