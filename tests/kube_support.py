"""Pods and nodes as the Kubernetes API serves them, and a stand-in `kubectl` on PATH.

The emulator these go into is `emulators.ClusterEmulator` (served by
`emulators.RunningCluster`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
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


# ---- a stand-in kubectl on PATH

_KUBECTL = '''#!{python}
"""Stand-in kubectl: records each call; answers version, kustomize and apply."""
import json
import sys
from pathlib import Path

here = Path(__file__).resolve().parent.parent
args = sys.argv[1:]
stdin = sys.stdin.read() if args[-2:] == ["-f", "-"] else ""
with open(here / "kubectl-calls.jsonl", "a") as calls:
    calls.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
behaviour = json.loads((here / "kubectl-behaviour.json").read_text())
if "version" in args:
    print(json.dumps({{"clientVersion": {{"gitVersion": behaviour["version"]}},
                      "kustomizeVersion": behaviour["kustomize"]}}))
elif args[0] == "kustomize":
    print(f"apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: built\\n"
          f"  annotations:\\n    source: '{{args[1]}}'")
elif "apply" in args:
    counter = here / "kubectl-applies"
    count = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(count + 1))
    if count < behaviour["apply_failures"]:
        sys.stderr.write(behaviour["stderr"] + "\\n")
        sys.exit(behaviour["exit_code"])
    print("configmap/built serverside-applied\\nserviceaccount/runner serverside-applied")
else:
    sys.stderr.write(f"stand-in kubectl: unexpected call {{args}}\\n")
    sys.exit(2)
'''


class StandInKubectl:
    """A `kubectl` script, alone on PATH, that records its calls and fails applies on demand."""

    def __init__(self, directory: Path, monkeypatch: Any) -> None:
        self.directory = directory
        bin_dir = directory / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        script = bin_dir / "kubectl"
        script.write_text(_KUBECTL.format(python=sys.executable))
        script.chmod(0o755)
        self.bin_dir = bin_dir
        self.behave()
        monkeypatch.setenv("PATH", str(bin_dir))  # nothing else: no real kubectl or kustomize

    def behave(
        self,
        *,
        apply_failures: int = 0,
        stderr: str = "",
        exit_code: int = 1,
        version: str = "v1.31.0",
        kustomize: str = "v5.4.2",
    ) -> None:
        """How the next calls behave: the first `apply_failures` applies fail with `stderr`."""
        behaviour = {
            "apply_failures": apply_failures,
            "stderr": stderr,
            "exit_code": exit_code,
            "version": version,
            "kustomize": kustomize,
        }
        (self.directory / "kubectl-behaviour.json").write_text(json.dumps(behaviour))

    def calls(self) -> list[list[str]]:
        """The arguments of every call so far."""
        path = self.directory / "kubectl-calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["args"] for line in path.read_text().splitlines()]

    def applies(self) -> list[list[str]]:
        """The arguments of every apply so far."""
        return [args for args in self.calls() if "apply" in args]

    def builds(self) -> list[str]:
        """The kustomize sources built so far."""
        return [args[1] for args in self.calls() if args[0] == "kustomize"]
