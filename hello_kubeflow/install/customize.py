"""The few changes `inv setup` makes to upstream's rendered objects, and the objects it adds.

Each is one upstream's install instructions make after applying; made before the
apply, it keeps one field manager. The rendered files on disk stay upstream's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass

from hello_kubeflow.install.components import Component, Manifest, object_name

ISTIO_GATEWAY = "kubeflow/kubeflow-gateway"
"""The Kubeflow platform's Istio gateway (kubeflow/manifests 26.03,
`common/istio/kubeflow-istio-resources/base/kf-istio-resources.yaml`)."""
KSERVE_DEPLOYMENT_MODE = "Standard"
"""KServe without Knative: plain Deployments. kserve/kserve v0.20.0,
`pkg/constants/constants.go`: `Standard` (`RawDeployment` is its deprecated name);
`hack/setup/quick-install/kserve-standard-mode-full-install-with-manifests.sh`
sets `deploy.defaultDeploymentMode` in the `inferenceservice-config` ConfigMap."""


@dataclass(frozen=True)
class Change:
    """One change to an upstream object, and why (printed by `--dry-run`)."""

    what: str
    target: str
    """The object changed, as `object_name` names it: `Kind namespace/name`."""
    change: Callable[[Manifest], None]


def _seldon_through_istio(obj: Manifest) -> None:
    """Turn on the operator's Istio support and name Kubeflow's gateway.

    SeldonIO/seldon-core v1.17.1: `operator/config/manager/manager.yaml` sets ISTIO_ENABLED
    "false" and ISTIO_GATEWAY "istio-system/seldon-gateway" (the lite config,
    `operator/config/lite/patch_manager_env.yaml`, leaves both); `operator/controllers/
    seldondeployment_controller.go` routes through ISTIO_GATEWAY when it is "true".
    """
    wanted = {"ISTIO_ENABLED": "true", "ISTIO_GATEWAY": ISTIO_GATEWAY}
    for container in obj["spec"]["template"]["spec"]["containers"]:
        if container.get("name") != "manager":
            continue
        env = container.setdefault("env", [])
        for entry in env:
            if entry.get("name") in wanted:
                entry.pop("valueFrom", None)
                entry["value"] = wanted.pop(entry["name"])
        env.extend({"name": k, "value": v} for k, v in wanted.items())


def _kserve_standard_mode(obj: Manifest) -> None:
    deploy = json.loads(obj["data"].get("deploy") or "{}")
    deploy["defaultDeploymentMode"] = KSERVE_DEPLOYMENT_MODE
    obj["data"]["deploy"] = json.dumps(deploy, indent=2)


def changes_for(component: Component, *, istio: bool) -> list[Change]:
    """The changes made to `component`'s objects (`istio`: the platform is installed)."""
    if component.folder.startswith("seldon-core-") and istio:
        return [
            Change(
                f"Seldon operator: ISTIO_ENABLED=true, ISTIO_GATEWAY={ISTIO_GATEWAY} "
                "(models are routed through Kubeflow's gateway)",
                "Deployment seldon-system/seldon-controller-manager",
                _seldon_through_istio,
            )
        ]
    if component.folder.startswith("kserve-"):
        return [
            Change(
                f"KServe: defaultDeploymentMode {KSERVE_DEPLOYMENT_MODE} (no Knative)",
                "ConfigMap kserve/inferenceservice-config",
                _kserve_standard_mode,
            )
        ]
    return []


def added_objects(component: Component) -> list[Manifest]:
    """Objects `inv setup` adds to a component: KServe's namespace, left out of its release.

    kserve/kserve v0.20.0, `hack/release/generate-install.sh`: `kserve.yaml` drops it.
    """
    if component.folder.startswith("kserve-"):
        return [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "kserve",
                    "labels": {"app.kubernetes.io/managed-by": "hello-kubeflow"},
                },
            }
        ]
    return []


def prepare(
    component: Component, objects: list[Manifest], *, istio: bool
) -> tuple[list[Manifest], list[str]]:
    """The objects to apply for `component` (copies, changed, after those added), and notes.

    Each note names a change made, or one expected and not found.
    """
    prepared = [*added_objects(component), *(copy.deepcopy(o) for o in objects)]
    notes = [f"adds {o['kind']} {o['metadata']['name']}" for o in added_objects(component)]
    for change in changes_for(component, istio=istio):
        matched = [o for o in prepared if object_name(o) == change.target]
        for obj in matched:
            change.change(obj)
        notes.append(change.what if matched else f"{change.what}: NOT FOUND in the manifests")
    return prepared, notes
