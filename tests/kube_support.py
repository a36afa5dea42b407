"""Pods and nodes as the Kubernetes API serves them.

The emulator these go into is `emulators.ClusterEmulator` (served by
`emulators.RunningCluster`).
"""

from __future__ import annotations

from typing import Any

# ---- pods as the API serves them


def pod(
    namespace: str,
    name: str,
    *,
    phase: str = "Pending",
    ready: bool = False,
    containers: tuple[str, ...] = ("main",),
    statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    owner: tuple[str, str] | None = None,
    restart_policy: str = "Always",
    reason: str = "",
) -> dict[str, Any]:
    """A pod with a status (Running + ready=True gives a Ready pod)."""
    meta: dict[str, Any] = {"namespace": namespace, "name": name, "uid": f"uid-{namespace}-{name}"}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": f"uid-{owner[1]}",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": c, "image": f"example.com/{c}:1"} for c in containers],
        },
        "status": status(
            phase=phase,
            ready=ready,
            containers=containers,
            statuses=statuses,
            conditions=conditions,
            reason=reason,
        ),
    }


def status(
    *,
    phase: str = "Pending",
    ready: bool = False,
    containers: tuple[str, ...] = ("main",),
    statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """A pod status; container statuses default to running (ready or not)."""
    if statuses is None and phase in ("Running", "Succeeded"):
        statuses = [
            {"name": c, "ready": ready, "restartCount": 0, "state": {"running": {}}}
            for c in containers
        ]
    if conditions is None:
        conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    result: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": statuses or [],
    }
    if reason:
        result["reason"] = reason
    return result


def waiting(container: str, reason: str, message: str = "", restarts: int = 0) -> dict[str, Any]:
    """A container status waiting for `reason`."""
    return {
        "name": container,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}} if restarts else {},
    }


def terminated(container: str, exit_code: int, reason: str = "Error") -> dict[str, Any]:
    """A container status that has terminated."""
    return {
        "name": container,
        "ready": False,
        "restartCount": 0,
        "state": {"terminated": {"exitCode": exit_code, "reason": reason}},
    }


def unschedulable(message: str) -> list[dict[str, Any]]:
    """Conditions of a pod the scheduler cannot place."""
    return [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message},
    ]


def ready_status(containers: tuple[str, ...] = ("main",)) -> dict[str, Any]:
    """The status of a Running, Ready pod."""
    return status(phase="Running", ready=True, containers=containers)


def node(name: str, cpu: str, memory: str, *, unschedulable: bool = False) -> dict[str, Any]:
    """A node with this much allocatable CPU and memory."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}},
    }
