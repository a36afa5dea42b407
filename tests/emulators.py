"""Emulators over real HTTP for what cannot run here: Kubernetes and its helpers.

`kmock` handlers are asyncio apps; `serving(handler)` runs one on 127.0.0.1 in a
background thread with its own event loop, so synchronous clients (the
official `kubernetes` client, `kfp.Client`, `requests`) talk to it unchanged.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kmock
from kmock._internal import enums

SELDON = "machinelearning.seldon.io/v1/seldondeployments"
KSERVE = "serving.kserve.io/v1beta1/inferenceservices"


@contextmanager
def serving(handler: kmock.RawHandler) -> Iterator[str]:
    """Serve `handler` on a free port of 127.0.0.1 for the duration; yield its base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["stop"] = stop
        try:
            async with handler, kmock.Server(handler) as server:
                state["url"] = str(server.url).rstrip("/")
                ready.set()
                await stop.wait()
        except BaseException as exc:  # surface a failed start to the test
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10) or "error" in state:
        raise RuntimeError(f"the emulator did not start: {state.get('error')!r}")
    try:
        yield state["url"]
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)
        loop.close()


class ClusterEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """`KubernetesEmulator` plus server-side apply creating what does not exist yet.

    A real API server answers an apply patch (`application/apply-patch+yaml`)
    for a missing object by creating it; kmock's emulator only patches existing
    ones, so the missing object is created empty first, then patched as usual.
    """

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.controllers: list[Callable[[ClusterEmulator, Any], None]] = []

    async def _handle(self, request: Any) -> Any:
        for controller in self.controllers:  # the cluster's operators, reacting to requests
            controller(self, request)
        content_type = request.headers.get("Content-Type", "")
        if request.action == enums.action.UPDATE and request.name and "apply-patch" in content_type:
            key = (request.resource, request.namespace, request.name)
            blank = {
                "apiVersion": (request.data or {}).get("apiVersion"),
                "kind": (request.data or {}).get("kind"),
                "metadata": {"name": request.name, "namespace": request.namespace},
            }
            async with self._lock:
                if key not in self._objects:
                    self._objects[key] = blank
                elif self._objects[key].deleted:
                    self._objects[key].create(blank)
        return await super()._handle(request)

    def declare(self, *resources: str) -> None:
        """Make resources (e.g. `SELDON`) known to API discovery, as installed CRDs are."""
        for resource in resources:
            kind = "SeldonDeployment" if resource == SELDON else "InferenceService"
            if resource.endswith("/pods"):
                kind = "Pod"
            self.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True)

    def stored(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the emulator holds it, or None when absent or deleted."""
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return dict(json.loads(json.dumps(self.objects[key].raw)))


def write_kubeconfig(path: Path, server: str, *, context: str = "emulator") -> Path:
    """A kubeconfig whose only context points at `server`, with no credentials."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server}}],
        "users": [{"name": context, "user": {}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    path.write_text(json.dumps(config))
    return path


class Operator:
    """Plays a serving operator: each read of the resource shows the next status.

    An apply (a new spec) starts the statuses over, as a real operator
    reconciles again; the last status then stays.
    """

    def __init__(self, resource: str, *statuses: dict[str, Any]) -> None:
        self.resource = kmock.resource(resource)
        self.statuses = list(statuses)
        self.index = 0

    def __call__(self, emulator: ClusterEmulator, request: Any) -> None:
        if request.resource != self.resource or not request.name:
            return
        if request.action == enums.action.UPDATE:
            self.index = 0
            return
        key = (request.resource, request.namespace, request.name)
        if request.action != enums.action.FETCH or key not in emulator.objects:
            return
        if emulator.objects[key].deleted:
            return
        status = self.statuses[min(self.index, len(self.statuses) - 1)]
        self.index += 1
        emulator.objects[key].patch({"status": status})


def seldon(*states: str, description: str = "") -> list[dict[str, Any]]:
    """SeldonDeployment statuses, e.g. `seldon("Creating", "Available")`."""
    return [{"state": s, **({"description": description} if description else {})} for s in states]


def kserve_ready(host: str = "mnist-classifier.kubeflow.example.com") -> list[dict[str, Any]]:
    """InferenceService statuses: not ready yet, then Ready with its URL."""
    return [
        {"conditions": [{"type": "Ready", "status": "False", "reason": "RevisionMissing"}]},
        {"conditions": [{"type": "Ready", "status": "True"}], "url": f"http://{host}"},
    ]


def kserve_failed_to_load(message: str) -> list[dict[str, Any]]:
    """InferenceService statuses of a model server that cannot load the model."""
    return [
        {
            "conditions": [{"type": "Ready", "status": "False"}],
            "modelStatus": {
                "transitionStatus": "BlockedByFailedLoad",
                "states": {"targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message},
            },
        }
    ]


_KUBECTL = '''#!{python}
"""A stand-in kubectl: records its arguments; `port-forward` forwards to an emulator."""
import json, socket, sys, threading
from pathlib import Path

here = Path(__file__).resolve().parent
with open(here / "kubectl.log", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if not args or args[0] != "port-forward":
    sys.exit(0)
targets = json.loads((here / "kubectl-targets.json").read_text())
target = targets.get(args[1])
if target is None:
    print(f'error: services "{{args[1]}}" not found', file=sys.stderr)
    sys.exit(1)
local = int(args[2].split(":")[0])
host, port = target.rsplit(":", 1)

def pipe(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

server = socket.create_server(("127.0.0.1", local))
print(f"Forwarding from 127.0.0.1:{{local}} -> {{args[2].split(':')[1]}}", flush=True)
while True:
    client, _ = server.accept()
    upstream = socket.create_connection((host, int(port)))
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
'''


def install_kubectl(directory: Path, targets: dict[str, str]) -> Path:
    """Write a stand-in `kubectl` into `directory` (put it first on PATH).

    Args:
        directory: where the script goes.
        targets: what `port-forward` reaches, e.g. `{"svc/ml-pipeline-ui": "127.0.0.1:8888"}`.

    Returns:
        The log file: one JSON list of arguments per call.
    """
    import sys

    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "kubectl"
    script.write_text(_KUBECTL.format(python=sys.executable))
    script.chmod(0o755)
    (directory / "kubectl-targets.json").write_text(json.dumps(targets))
    return directory / "kubectl.log"


def kubectl_calls(log: Path) -> list[list[str]]:
    """The argument lists the stand-in kubectl was called with."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]
