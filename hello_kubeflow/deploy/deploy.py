"""Deploy the served model and wait until it serves; remove it; through the Kubernetes API.

Neither status tells a rollout apart, so each deploy stamps a rollout value on the pod
template and the model serves once its Ready pods all carry it (docs/cluster.md).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
from typing import Any

from kubernetes import client

from hello_kubeflow.deploy.model_manifests import (
    ARTIFACT_SECRET,
    ROLLOUT_ANNOTATION,
    SERVING_APIS,
    ModelDeployment,
    manifest,
    rollout_of,
    seldon_storage_secret,
    storage_credentials,
)
from hello_kubeflow.deploy.serving_api import Missing, apply, call, installed, read_deployment
from hello_kubeflow.errors import DeploymentError, PrerequisiteError
from hello_kubeflow.kube.feed import list_pods
from hello_kubeflow.kube.pods import Pod, pod_state
from hello_kubeflow.kube.wait import NO_RESTART_LIMIT, CrashJudge, last_logs, poll_until
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

DEPLOY_TIMEOUT = 600.0
POLL_INTERVAL = 3.0
_KSERVE_FAILED = frozenset({"InvalidSpec", "BlockedByFailedLoad", "FailedToLoad"})


def detect_serving(api: client.ApiClient, preferred: str = "auto") -> str:
    """The serving system to use: `preferred` if installed, or whichever is (`auto`: Seldon first).

    Raises:
        PrerequisiteError: the preferred system (or, for `auto`, either) is not installed.
    """
    wanted = ["seldon", "kserve"] if preferred == "auto" else [preferred]
    for serving in wanted:
        if serving not in SERVING_APIS:
            raise PrerequisiteError(
                f"unknown serving system {serving!r}: use auto, seldon or kserve"
            )
        if installed(api, SERVING_APIS[serving]):
            return serving
    names = " or ".join(SERVING_APIS[s].kind for s in wanted)
    raise PrerequisiteError(
        f"no {names} resource type in the cluster: install it with `inv setup` "
        "(HK_SERVING picks Seldon Core or KServe), or set HK_SERVING to the one installed"
    )


def deploy_model(
    api: client.ApiClient,
    deployment: ModelDeployment,
    *,
    timeout: float = DEPLOY_TIMEOUT,
    poll_interval: float = POLL_INTERVAL,
    crash_grace: float = Settings.wait_crash_grace,
) -> dict[str, Any]:
    """Apply `deployment` and wait until it serves (`wait_until_serving`); return the resource.

    Raises:
        DeploymentError: refused, Failed, a pod that will not heal, or not ready in time.
        PrerequisiteError: the resource type is not installed, or we may not create it.
    """
    wanted = manifest(deployment)
    applied = apply(api, wanted)
    generation = int((applied.get("metadata") or {}).get("generation") or 0)
    where = f"{deployment.api.kind} {deployment.namespace}/{deployment.name}"
    log.info("applied %s (model %s)", where, deployment.model_uri)
    return wait_until_serving(
        api,
        deployment.serving,
        deployment.namespace,
        deployment.name,
        timeout=timeout,
        poll_interval=poll_interval,
        generation=generation,
        rollout=rollout_of(wanted),
        crash_grace=crash_grace,
    )


def wait_until_serving(
    api: client.ApiClient,
    serving: str,
    namespace: str,
    name: str,
    *,
    timeout: float = DEPLOY_TIMEOUT,
    poll_interval: float = POLL_INTERVAL,
    generation: int = 0,
    rollout: str = "",
    crash_grace: float = Settings.wait_crash_grace,
) -> dict[str, Any]:
    """Poll the resource until it serves; fail fast on what will not heal.

    Args:
        api: the Kubernetes API client.
        serving: `seldon` or `kserve`.
        namespace: the resource's namespace.
        name: the resource's name.
        timeout: seconds to wait.
        poll_interval: seconds between polls.
        generation: the spec generation a SeldonDeployment's status must have seen (0: any).
        rollout: the value this deploy put on the pod template, which the model's Ready
            pods must all carry ("": the resource's status alone).
        crash_grace: seconds a model pod may crash-loop (`HK_WAIT_CRASH_GRACE`).

    Raises:
        DeploymentError: Failed, a pod that will not heal, gone, or not ready in time.
    """
    where = f"{SERVING_APIS[serving].kind} {namespace}/{name}"
    describe = f"kubectl describe {SERVING_APIS[serving].plural} -n {namespace} {name}"
    crashes = CrashJudge(crash_grace)

    def look() -> tuple[dict[str, Any] | None, str]:
        resource = read_deployment(api, serving, namespace, name)
        if resource is None:
            raise DeploymentError(f"{where} disappeared while we waited for it: deploy it again")
        pods = _model_pods(api, serving, namespace, name)
        reported = resource.get("status") or {}
        if serving == "seldon":
            ready, status = _judge_seldon(where, describe, reported, generation)
        else:  # a failure KServe reports is this deploy's once every pod is of this deploy
            settled = all(_rollout_of_pod(pod) == rollout for pod in pods) if rollout else True
            ready, status = _judge_kserve(where, reported, settled)
        _check_pods(api, pods, rollout, crashes)
        if ready and rollout:
            ready, status = _rolled_out(pods, rollout, status)
        return (resource if ready else None), status

    def too_late(status: str) -> DeploymentError:
        return DeploymentError(
            f"{where} was not serving within {timeout:.0f} s (last status: {status}). "
            f"See `{describe}` and `kubectl get pods -n {namespace}`"
        )

    resource = poll_until(
        where, look, timeout=timeout, poll_interval=poll_interval, too_late=too_late
    )
    log.info("%s is serving", where)
    return resource


def undeploy(api: client.ApiClient, namespace: str, name: str, serving: str = "auto") -> list[str]:
    """Delete the served model (of `serving`, or of either for `auto`); say what was deleted."""
    removed = []
    custom = client.CustomObjectsApi(api)
    for each in ("seldon", "kserve") if serving == "auto" else (serving,):
        target = SERVING_APIS[each]
        what = f"{target.kind} {namespace}/{name}"
        args = (target.group, target.version, namespace, target.plural, name)
        delete = functools.partial(custom.delete_namespaced_custom_object, *args)
        try:
            call(f"deleting {what}", delete, missing_ok=True)
        except Missing:
            continue
        removed.append(what)
        log.info("deleted %s", what)
    return removed


def copy_storage_credentials(api: client.ApiClient, namespace: str, serving: str) -> None:
    """Copy KFP's object store keys (`accesskey`/`secretkey`) where the storage initializer reads.

    Raises:
        DeploymentError: KFP's artifact secret is not in `namespace`.
    """
    core = client.CoreV1Api(api)
    try:
        secret = call(
            f"reading Secret {namespace}/{ARTIFACT_SECRET}",
            lambda: core.read_namespaced_secret(ARTIFACT_SECRET, namespace),
            missing_ok=True,
        )
    except Missing:
        raise DeploymentError(
            f"Kubeflow Pipelines' artifact secret {ARTIFACT_SECRET} is not in namespace "
            f"{namespace}, so the model server could not fetch the model: deploy into the "
            "namespace the pipeline runs in (HK_NAMESPACE)"
        ) from None
    data = secret.data or {}
    access, key = (base64.b64decode(data.get(k, "")).decode() for k in ("accesskey", "secretkey"))
    if serving == "seldon":
        apply(api, seldon_storage_secret(namespace, access, key))
        return
    for obj in storage_credentials(namespace, access, key):
        apply(api, obj)


def _judge_seldon(
    where: str, describe: str, status: dict[str, Any], generation: int
) -> tuple[bool, str]:
    """(serving?, status) of a SeldonDeployment: Available at `generation`, or Failed (raises)."""
    observed = status.get("observedGeneration")
    stale = bool(generation and observed is not None and int(observed) < generation)
    state = str(status.get("state") or "Creating")
    message = str(status.get("description") or "")
    if state == "Failed" and not stale:
        raise DeploymentError(f"{where} Failed: {message or 'no reason given'}. See `{describe}`")
    return state == "Available" and not stale, state + (f" ({message})" if message else "")


def _judge_kserve(where: str, status: dict[str, Any], settled: bool) -> tuple[bool, str]:
    """(serving?, status) of an InferenceService: Ready, or the model's failure (raises)."""
    # Its observedGeneration is its Deployment's: the pods tell the rollout (kserve v0.20.0,
    # pkg/apis/serving/v1beta1/inference_service_status.go `PropagateRawStatus`, `PropagateStatus`).
    model = status.get("modelStatus") or {}
    states = model.get("states") or {}
    failed = {model.get("transitionStatus"), states.get("targetModelState")} & _KSERVE_FAILED
    if failed and settled:
        info = model.get("lastFailureInfo") or {}
        reason = info.get("message") or info.get("reason") or failed.pop()
        raise DeploymentError(f"{where} cannot serve the model: {reason}")
    ready = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {"status": ""}
    )
    return ready.get("status") == "True", _ready_summary(ready)


def _ready_summary(ready: dict[str, Any]) -> str:
    """`Ready=<status> (<reason> <message>)`, the parenthesis only when there is either."""
    summary = f"Ready={ready.get('status') or 'Unknown'}"
    if ready.get("reason") or ready.get("message"):
        summary += f" ({ready.get('reason') or ''} {ready.get('message') or ''})".replace("( ", "(")
    return summary.strip()


def _model_pods(api: client.ApiClient, serving: str, namespace: str, name: str) -> list[Pod]:
    """The model's pods (found by the label its serving system puts on them)."""
    core = client.CoreV1Api(api)
    selector = SERVING_APIS[serving].pod_selector(name)
    try:
        pods = call(
            f"listing the pods of {name}",
            lambda: list_pods(core, namespace, label_selector=selector),  # JSON, as pod_state reads
            missing_ok=True,
        )
    except Missing:
        return []
    return list(json.loads(pods.data or b"{}").get("items") or [])


def _check_pods(api: client.ApiClient, pods: list[Pod], rollout: str, crashes: CrashJudge) -> None:
    """Fail at once when a pod of this rollout will not heal (a crash loop with its logs)."""
    current = [p for p in pods if not rollout or _rollout_of_pod(p) in ("", rollout)]
    states = [pod_state(pod, NO_RESTART_LIMIT) for pod in current]
    for state in crashes.judge(states, time.monotonic()):
        if state.fatal:
            tail = last_logs(client.CoreV1Api(api), state)
            raise DeploymentError(f"the model server cannot start: {state.explain()}{tail}")


def _rolled_out(pods: list[Pod], rollout: str, status: str) -> tuple[bool, str]:
    """(serving this deploy's model?, status): the Ready pods all carry `rollout`, one at least."""
    ready = [pod for pod in pods if pod_state(pod, NO_RESTART_LIMIT).ready]
    new = sum(1 for pod in ready if _rollout_of_pod(pod) == rollout)
    old = len(ready) - new
    if new and not old:
        return True, status
    waiting = f"{status}, waiting for the pods of this deploy ({new} ready"
    if old:
        waiting += f"; {old} of an earlier deploy still serving"
    return False, waiting + ")"


def _rollout_of_pod(pod: Pod) -> str:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(ROLLOUT_ANNOTATION) or "")
