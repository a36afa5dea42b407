"""What one pod's status means for a wait: ready, still coming, or broken for good."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

Pod = Mapping[str, Any]
"""A pod as the API serves it (JSON decoded): metadata, spec, status."""

IMAGE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "RunContainerError"})
CRASH_REASON = "CrashLoopBackOff"
# A registry that rate-limits or times out may answer the next pull: wait, do not fail.
_TRANSIENT_PULL = re.compile(
    r"toomanyrequests|too many requests|rate limit|\b429\b|\b50[234]\b|i/o timeout|"
    r"TLS handshake timeout|connection reset|context deadline exceeded|service unavailable",
    re.IGNORECASE,
)
_REPLACED_BY_CONTROLLER = frozenset(
    {"ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController"}
)

_FIXES = {  # by reason; "exit" for a non-zero exit, "failed" for any other
    **dict.fromkeys(
        IMAGE_REASONS,
        "check the image name and tag, and that the cluster can pull it "
        "(registry credentials in imagePullSecrets; for a local image, "
        "`kind load docker-image` or `minikube image load`)",
    ),
    "CreateContainerConfigError": "a Secret or ConfigMap it references is missing: "
    "kubectl describe pod -n {ns} {pod}",
    "RunContainerError": "the runtime could not start it: kubectl describe pod -n {ns} {pod}",
    CRASH_REASON: "see why it exits: kubectl logs -n {ns} {pod} -c {container} --previous",
    "JobFailed": "see kubectl describe job -n {ns} {job}",
    "exit": "see why it failed: kubectl logs -n {ns} {pod} -c {container}",
    "failed": "see kubectl describe pod -n {ns} {pod}",
}


@dataclass(frozen=True)
class PodState:
    """One pod, judged: `ready` (Running and Ready, or Succeeded), `counted`, `fatal`, and why.

    `reason` is a short word (Unschedulable...) with `message` and the `container` it is about;
    `counted` is False once its controller replaced it; `job`, the owner that decides its
    fate; `restarts`, its containers' highest restart count.
    """

    namespace: str
    name: str
    ready: bool
    reason: str
    message: str = ""
    container: str = ""
    fatal: bool = False
    counted: bool = True
    job: str = ""
    restarts: int = 0

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name): how pods are told apart."""
        return (self.namespace, self.name)

    def explain(self) -> str:
        """The fatal problem in one paragraph: pod, container, reason, message, and the fix."""
        where = f"pod {self.namespace}/{self.name}"
        if self.container:
            where += f" container '{self.container}'"
        detail = f": {self.message.rstrip('.')}" if self.message else ""  # one full stop
        key = "exit" if self.reason.startswith("Error (exit") else self.reason
        fix = _FIXES.get(key, _FIXES["failed"])
        fix = fix.format(ns=self.namespace, pod=self.name, container=self.container, job=self.job)
        return f"{where} is in {self.reason}{detail}. This will not heal by waiting; {fix}."


def pod_state(pod: Pod, restart_limit: int) -> PodState:
    """Judge one pod (a Failed pod of a Job comes back not fatal: its Job decides).

    Args:
        pod: the pod as the API serves it.
        restart_limit: restarts after which CrashLoopBackOff is fatal.
    """
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    owner = _controller(meta)
    statuses = _all_statuses(status)
    base = _base_state(meta, owner, statuses)
    if meta.get("deletionTimestamp"):
        return replace(base, reason="Terminating")
    if phase == "Succeeded":
        return replace(base, ready=True, reason="Succeeded")
    if phase == "Failed":
        return _failed_state(base, status, statuses, owner)
    for judged in (
        _broken_state(base, statuses, restart_limit, spec),
        _scheduling_state(base, phase, status),
        _waiting_state(base, statuses),
    ):
        if judged is not None:
            return judged
    return _coming_state(base, phase, spec, status)


def _all_statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]


def _base_state(
    meta: Mapping[str, Any], owner: tuple[str, str] | None, statuses: list[Mapping[str, Any]]
) -> PodState:
    """The pod's identity, owning Job and restarts; not ready, reason still to be judged."""
    return PodState(
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        False,
        "",
        job=owner[1] if owner and owner[0] == "Job" else "",
        restarts=max((int(cs.get("restartCount") or 0) for cs in statuses), default=0),
    )


def _failed_state(
    base: PodState,
    status: Mapping[str, Any],
    statuses: list[Mapping[str, Any]],
    owner: tuple[str, str] | None,
) -> PodState:
    """A Failed pod: its Job decides, its controller has replaced it, or it is fatal."""
    reason, message, container = _failure(status, statuses)
    if base.job:  # the Job makes a new pod or gives up: the Job decides
        return replace(base, reason="Failed", message=message or reason, container=container)
    # An evicted or node-lost pod: its controller has already made a new one.
    replaced = owner is not None and owner[0] in _REPLACED_BY_CONTROLLER
    return replace(
        base,
        reason=reason,
        message=message,
        container=container,
        fatal=not replaced,
        counted=not replaced,
    )


def _broken_state(
    base: PodState, statuses: list[Mapping[str, Any]], restart_limit: int, spec: Mapping[str, Any]
) -> PodState | None:
    """The first container in a state that will not heal, as a fatal state; None if none."""
    for cs in statuses:
        problem = _container_problem(cs, restart_limit, spec, bool(base.job))
        if problem is not None:
            reason, message = problem
            return replace(
                base, reason=reason, message=message, container=str(cs.get("name", "")), fatal=True
            )
    return None


def _scheduling_state(base: PodState, phase: str, status: Mapping[str, Any]) -> PodState | None:
    """Ready, or Unschedulable with the scheduler's message; None if neither."""
    if phase == "Running" and _condition(status, "Ready").get("status") == "True":
        return replace(base, ready=True, reason="Running")
    scheduled = _condition(status, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return replace(base, reason="Unschedulable", message=str(scheduled.get("message", "")))
    return None


def _waiting_state(base: PodState, statuses: list[Mapping[str, Any]]) -> PodState | None:
    """The first container waiting for a reason (ContainerCreating...); None if none."""
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            detail = str(waiting.get("message", ""))
            if waiting["reason"] == CRASH_REASON:
                detail = f"{cs.get('restartCount', 0)} restarts; {detail}"
            return replace(
                base,
                reason=str(waiting["reason"]),
                message=detail.strip("; "),
                container=str(cs.get("name", "")),
            )
    return None


def _coming_state(
    base: PodState, phase: str, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> PodState:
    """Still coming: Running with containers not yet ready, or its phase as it stands."""
    if phase == "Running":
        ready = sum(1 for cs in status.get("containerStatuses") or [] if cs.get("ready"))
        total = len(spec.get("containers") or []) or len(status.get("containerStatuses") or [])
        return replace(base, reason="Running", message=f"{ready}/{total} containers ready")
    return replace(
        base, reason=phase, message=str(status.get("message") or status.get("reason") or "")
    )


def _failure(status: Mapping[str, Any], statuses: list[Mapping[str, Any]]) -> tuple[str, str, str]:
    """(reason, message, container) of a Failed pod: the first non-zero exit, else the pod's."""
    for cs in statuses:
        exited = _nonzero_exit((cs.get("state") or {}).get("terminated") or {})
        if exited is not None:
            return (*exited, str(cs.get("name", "")))
    return str(status.get("reason") or "Failed"), str(status.get("message") or ""), ""


def _container_problem(
    cs: Mapping[str, Any], restart_limit: int, spec: Mapping[str, Any], job_owned: bool
) -> tuple[str, str] | None:
    """(reason, message) when this container is in a state that will not heal."""
    current = cs.get("state") or {}
    waiting = current.get("waiting") or {}
    reason, message = str(waiting.get("reason") or ""), str(waiting.get("message") or "")
    if reason in CONFIG_REASONS:
        return reason, message
    return (
        _pull_problem(cs, reason, message)
        or _crash_problem(cs, reason, restart_limit)
        or _exit_problem(current, spec, job_owned)
    )


def _pull_problem(cs: Mapping[str, Any], reason: str, message: str) -> tuple[str, str] | None:
    """An image that cannot be pulled; None if not, or if the registry may answer next time."""
    if reason not in IMAGE_REASONS:
        return None
    if reason != "InvalidImageName" and _TRANSIENT_PULL.search(message):
        return None
    return reason, message or f"cannot pull image {cs.get('image', '')}"


def _crash_problem(
    cs: Mapping[str, Any], reason: str, restart_limit: int
) -> tuple[str, str] | None:
    """A crash loop that has reached the restart limit, with its last exit; None if not."""
    restarts = int(cs.get("restartCount") or 0)
    if reason != CRASH_REASON or restarts < restart_limit:
        return None
    last = (cs.get("lastState") or {}).get("terminated") or {}
    exit_info = f"last exit code {last.get('exitCode')}" if last else ""
    if last.get("reason"):
        exit_info += f" ({last['reason']})"
    return reason, f"restarted {restarts} times; {exit_info}".strip("; ")


def _exit_problem(
    current: Mapping[str, Any], spec: Mapping[str, Any], job_owned: bool
) -> tuple[str, str] | None:
    """A non-zero exit in a pod that never restarts and no Job will replace; None if not."""
    if spec.get("restartPolicy") != "Never" or job_owned:  # a Job makes a new pod: it decides
        return None
    return _nonzero_exit(current.get("terminated") or {})


def _nonzero_exit(terminated: Mapping[str, Any]) -> tuple[str, str] | None:
    """(`Error (exit N)`, its message) for a terminated state's non-zero exit; None if not."""
    if int(terminated.get("exitCode") or 0) == 0:
        return None
    detail = str(terminated.get("message") or terminated.get("reason") or "")
    return f"Error (exit {terminated.get('exitCode')})", detail


def _controller(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the owner that controls this pod, if any."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind", "")), str(ref.get("name", ""))
    return None


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return {}
