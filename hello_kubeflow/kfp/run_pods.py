"""A run that can never start: its step pods cannot pull their image, or fit on no node.

The KFP API keeps such a run RUNNING for ever, so its step pods are judged as `inv wait`
judges pods. They carry `pipeline/runid=<run ID>`: the API server sets it in the workflow's
`spec.podMetadata.labels` (kubeflow/pipelines 2.17.0, backend/src/apiserver/template/
v2_template.go `SetPodMetadataLabels`, backend/src/common/util/consts.go) and Argo copies it
onto every pod (argoproj/argo-workflows v4.0.5, workflow/controller/workflowpod.go).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from hello_kubeflow.kube.client import describe_api_error
from hello_kubeflow.kube.feed import list_pods
from hello_kubeflow.kube.pods import CONFIG_REASONS, IMAGE_REASONS, Pod, PodState, pod_state
from hello_kubeflow.kube.wait import NO_RESTART_LIMIT

log = logging.getLogger(__name__)

RUN_ID_LABEL = "pipeline/runid"


@dataclass
class RunPodWatch:
    """Looks at one run's step pods at each poll; says when one will never start.

    Attributes:
        namespace: where the run's pods are (`kubeflow`, or the profile namespace).
        pipeline_image: the project's image, to tell its pull failures from KFP's own.
        unschedulable_grace: seconds a pod may stay Unschedulable (HK_RUN_UNSCHEDULABLE_GRACE).
    """

    api: client.ApiClient
    namespace: str
    run_id: str
    pipeline_image: str
    unschedulable_grace: float
    _unschedulable_since: dict[str, float] = field(default_factory=dict)
    _unreadable: bool = False

    def check(self, now: float) -> str:
        """What keeps the run from ever finishing at `now` (monotonic), or "" while nothing does.

        Never raises: pods we may not list leave the run to the KFP API (logged once).
        """
        pods = self._list()
        if pods is None:
            return ""
        stuck = set()
        for pod in pods:
            # crash loops are the run's to report (a failed step), not ours
            state = pod_state(pod, NO_RESTART_LIMIT)
            if state.fatal and state.reason in IMAGE_REASONS | CONFIG_REASONS:
                return _explain(state, pod, self.pipeline_image)
            if state.reason == "Unschedulable":
                stuck.add(state.name)
                since = self._unschedulable_since.setdefault(state.name, now)
                if now - since >= self.unschedulable_grace:
                    return _unschedulable(state, now - since)
        self._unschedulable_since = {
            k: v for k, v in self._unschedulable_since.items() if k in stuck
        }
        return ""

    def _list(self) -> list[Pod] | None:
        core = client.CoreV1Api(self.api)
        try:
            answer = list_pods(core, self.namespace, label_selector=f"{RUN_ID_LABEL}={self.run_id}")
            return list(json.loads(answer.data or b"{}").get("items") or [])
        except Exception as exc:  # the run's own state still decides; say why once
            if not self._unreadable:
                log.info(
                    "cannot list the run's pods in %s (%s): only the run's state is followed",
                    self.namespace,
                    describe_api_error(exc),
                )
                self._unreadable = True
            return None


def _explain(state: PodState, pod: Pod, pipeline_image: str) -> str:
    image = _image(pod, state.container)
    where = f"pod {state.namespace}/{state.name} container '{state.container}'"
    said = f"{where} is in {state.reason}: {state.message}" if state.message else where
    if state.reason == "CreateContainerConfigError":
        fix = (
            f"a Secret or ConfigMap the step needs is missing in {state.namespace} "
            f"(`kubectl describe pod -n {state.namespace} {state.name}` names it); on a "
            "multi-user install, the profile namespace is not ready yet"
        )
    elif state.reason in CONFIG_REASONS:
        fix = (
            "the container runtime could not start it: "
            f"`kubectl describe pod -n {state.namespace} {state.name}` says why"
        )
    elif image and image == pipeline_image:
        fix = (
            f"the cluster's nodes cannot pull the pipeline image {image}: push it to a registry "
            "they can reach (`inv build-push` with CONTAINER_REGISTRY set to it; on kind, the "
            "local registry of docs/cluster.md, localhost:5001), and give the namespace an "
            "image pull secret if that registry needs a login"
        )
    else:
        fix = (
            f"{image or 'its image'} is Kubeflow Pipelines' own: the nodes cannot reach its "
            "registry. Check their network, or mirror the images `inv setup --dry-run` lists "
            "into a registry they reach"
        )
    return f"{said}. It will never start, so the run would stay RUNNING; {fix}"


def _unschedulable(state: PodState, seconds: float) -> str:
    said = f": {state.message}" if state.message else ""
    return (
        f"pod {state.namespace}/{state.name} has been Unschedulable for {seconds:.0f} s{said}. "
        "No node has room for it, so the run would stay RUNNING; give the cluster more CPU or "
        "memory (`inv setup` lists what each profile wants), free some, or raise "
        "HK_RUN_UNSCHEDULABLE_GRACE if nodes are being added"
    )


def _image(pod: Pod, container: str) -> str:
    spec: Mapping[str, Any] = pod.get("spec") or {}
    for entry in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if entry.get("name") == container:
            return str(entry.get("image") or "")
    return ""
