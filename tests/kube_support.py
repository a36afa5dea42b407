"""A Kubernetes API emulator (kmock) on a real 127.0.0.1 port, plus pods to put in it.

`ClusterEmulator` runs `kmock.KubernetesEmulator` behind `kmock.Server` in its
own event loop thread, so the synchronous official `kubernetes` client talks to
it over real HTTP, unchanged. Tests play the kubelet through the same client
(create a pod, patch its status); the emulator streams those changes to watches.
Faults (5xx, 429, a dropped or expired watch) are kmock reactions.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kmock
from kubernetes import client

from hello_kubeflow.settings import Settings

WatchEvent = dict[str, Any]


def is_watch(request: Any) -> bool:
    """A watch request (the official client sends watch=True)."""
    return str(request.params.get("watch", "")).lower() == "true"


def is_pod_watch(request: Any) -> bool:
    """A pod watch request."""
    return is_watch(request) and request.resource is not None and request.resource.plural == "pods"


def is_pod_list(request: Any) -> bool:
    """A pod list request (GET on a pod collection, not a watch)."""
    return (
        str(request.method) in ("GET", "method.GET")
        and request.resource is not None
        and request.resource.plural == "pods"
        and request.name is None
        and not is_watch(request)
    )


class ClusterEmulator:
    """kmock's Kubernetes emulator on a free port, served from a background thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.emulator: Any = None
        self.url = ""
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)

    def __enter__(self) -> ClusterEmulator:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the kmock emulator did not start")
        configuration = client.Configuration()
        configuration.host = self.url
        self.core = client.CoreV1Api(client.ApiClient(configuration))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            for resource in ("v1/pods", "v1/nodes", "batch/v1/jobs"):
                emulator.resources[resource] = {}
            # The official client sends watch=True; kmock's emulator knows only watch=true.
            (emulator.fallback**1)[kmock.params({"watch": "True"})] << emulator._serve_watch
            # ... and asks its version at /version/, which kmock serves only without the slash.
            emulator["get /version/"] << emulator._serve_server_version
            self._ready.set()
            await self._stop.wait()

    def call(self, function: Callable[[], Any]) -> Any:
        """Run `function` in the emulator's event loop (where kmock must be touched)."""

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # ---- what was asked of the server

    def requests(self, predicate: Callable[[Any], bool] = lambda r: True) -> list[Any]:
        """The requests served so far that match `predicate`."""
        return self.call(lambda: [r for r in list(self.emulator) if predicate(r)])  # type: ignore[no-any-return]

    # ---- faults

    def fail(
        self, predicate: Callable[[Any], bool], times: int, status: int, after: int = 0
    ) -> None:
        """Answer matching requests number `after` to `after + times - 1` with an HTTP error."""
        body = {
            "kind": "Status",
            "code": status,
            "reason": "Injected",
            "message": f"injected {status}",
        }
        self.call(lambda: self.emulator[predicate][after : after + times] << status << body)

    def next_watches(self, *streams: tuple[Any, ...]) -> None:
        """Serve the next watch requests with these streams, one each, in order.

        A stream is a tuple of items: events (dicts) are sent as JSON lines,
        callables run when reached (e.g. to change an object silently), `...`
        holds the stream open without ever sending more. A stream that ends
        ends the watch (a dropped watch). Watches after these are quiet.
        """

        def install() -> None:
            watches = self.emulator[is_pod_watch]  # kmock slices count matching requests
            for index, stream in enumerate(streams):
                watches[index : index + 1] << (b"", *stream)
            watches[len(streams) :] << (b"", ...)

        self.call(install)

    def change_silently(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> Callable[[], None]:
        """A stream item that changes a pod in the store without telling any watch."""

        def change() -> None:
            self.emulator.objects["v1/pods", namespace, name].patch(patch)

        return change

    # ---- the kubelet's part

    def add(self, pod: dict[str, Any]) -> None:
        """Create a pod through the API (watches see ADDED)."""
        self.core.create_namespaced_pod(pod["metadata"]["namespace"], pod, _preload_content=False)

    def set_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace a pod's status through the API (watches see MODIFIED)."""
        self.core.patch_namespaced_pod_status(
            name, namespace, {"status": status}, _preload_content=False
        )

    def delete(self, namespace: str, name: str) -> None:
        """Delete a pod through the API (watches see DELETED)."""
        self.core.delete_namespaced_pod(name, namespace, _preload_content=False)

    def put_object(
        self, resource: str, namespace: str | None, name: str, body: dict[str, Any]
    ) -> None:
        """Store an object directly (for reads; watches are not told)."""
        self.call(lambda: self.emulator.objects.__setitem__((resource, namespace, name), body))

    # ---- how our code finds it

    def kubeconfig(self, directory: Path) -> Path:
        """Write a kubeconfig whose current context points at this emulator."""
        path = directory / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: emulator\n  cluster:\n    server: {self.url}\n"
            "users:\n- name: tester\n  user:\n    token: not-a-secret\n"
            "contexts:\n- name: emulated\n  context:\n    cluster: emulator\n    user: tester\n"
            "current-context: emulated\n"
        )
        return path

    def settings(self, directory: Path, **changes: Any) -> Settings:
        """Settings for talking to this emulator, with short timeouts."""
        fields: dict[str, Any] = {
            "kubeconfig": self.kubeconfig(directory),
            "kube_request_timeout": 5.0,
        }
        fields.update(changes)
        return Settings(**fields)


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
