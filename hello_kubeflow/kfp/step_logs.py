"""Why a pipeline step failed: its pod's end state and the last lines of its log.

The KFP API names a failed step but not why; its `executor` pod does. Argo labels a
workflow's pods `workflows.argoproj.io/workflow=<name>`, annotates each with its node
(`.../node-id`, `.../node-name`) and runs the step in container `main` (argoproj/argo-workflows
v4.0.5, workflow/common/common.go); the executor's node ID, `<workflow name>-<hash>`, is the
step's child task (kubeflow/pipelines 2.17.0, backend/src/common/util/workflow.go
`RetrievePodName`).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from kubernetes import client

from hello_kubeflow.deploy.serving_api import Missing, call
from hello_kubeflow.errors import HelloKubeflowError
from hello_kubeflow.kfp.runs import FailedStep
from hello_kubeflow.kube.feed import list_pods

log = logging.getLogger(__name__)

LOG_LINES = 20
MAIN_CONTAINER = "main"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
NODE_ID = "workflows.argoproj.io/node-id"
NODE_NAME = "workflows.argoproj.io/node-name"


def explain_failed_step(
    api: client.ApiClient, namespace: str, step: FailedStep, lines: int = LOG_LINES
) -> str:
    """Say why `step` failed: its pod, how its main container ended, its last log lines.

    For a cluster we cannot read, it says how to look instead.
    """
    workflow = step.node_id.rsplit("-", 1)[0] if "-" in step.node_id else ""
    how_to_look = (
        f"See its log: kubectl logs -n {namespace} -c {MAIN_CONTAINER} "
        f"-l {WORKFLOW_LABEL}={workflow or '<run workflow>'}"
    )
    if not workflow:
        return how_to_look
    try:
        pod = _step_pod(api, namespace, workflow, step)
        if pod is None:
            return how_to_look
        name = str(pod["metadata"]["name"])
        tail = _log_tail(api, namespace, name, lines)
    except (HelloKubeflowError, Missing) as exc:
        log.info("could not read the failed step's pod: %s", exc)
        return how_to_look
    said = f"Pod {namespace}/{name}: {_ending(pod)}"
    if tail:
        shown = "\n".join(f"  | {line}" for line in tail)
        said += f". The last {len(tail)} lines of its log:\n{shown}"
    else:
        said += ". Its log is empty"
    return said


def _step_pod(
    api: client.ApiClient, namespace: str, workflow: str, step: FailedStep
) -> dict[str, Any] | None:
    """The step's executor pod: by node ID, else the last `...<key>.executor` pod."""
    core = client.CoreV1Api(api)
    answer = call(
        f"listing the pods of workflow {workflow}",
        lambda: list_pods(core, namespace, label_selector=f"{WORKFLOW_LABEL}={workflow}"),
    )
    pods = list(json.loads(answer.data or b"{}").get("items") or [])
    for pod in pods:
        if _annotations(pod).get(NODE_ID) == step.node_id:
            return dict(pod)
    # A retried executor is a Retry node whose pods are its children, `executor(N)`.
    executor = re.compile(rf"\.{re.escape(step.task_key)}\.executor(\(\d+\))?$")
    matching = [p for p in pods if executor.search(_annotations(p).get(NODE_NAME, ""))]
    matching.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
    return dict(matching[-1]) if matching else None


def _log_tail(api: client.ApiClient, namespace: str, pod: str, lines: int) -> list[str]:
    core = client.CoreV1Api(api)
    text = call(
        f"reading the log of pod {namespace}/{pod}",
        lambda: core.read_namespaced_pod_log(
            pod,
            namespace,
            container=MAIN_CONTAINER,
            tail_lines=lines,
            _preload_content=False,
        ),
    )
    raw = text.data.decode(errors="replace")
    return raw.rstrip("\n").splitlines()[-lines:] if raw.strip() else []


def _ending(pod: dict[str, Any]) -> str:
    """How the main container ended: reason, exit code, message."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    main = next((s for s in statuses if s.get("name") == MAIN_CONTAINER), None)
    ended = ((main or {}).get("state") or {}).get("terminated") or {}
    if not ended:
        phase = (pod.get("status") or {}).get("phase") or "unknown"
        return f"phase {phase}"
    said = f"{ended.get('reason') or 'terminated'}, exit code {ended.get('exitCode', '?')}"
    if ended.get("message"):
        said += f" ({str(ended['message']).strip()[:300]})"
    return said


def _annotations(pod: dict[str, Any]) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("annotations") or {})
