"""Emulators over real HTTP for what cannot run here: Kubernetes and its helpers.

`kmock` handlers are asyncio apps; `serving(handler)` runs one on 127.0.0.1 in a
background thread with its own event loop, so synchronous clients (the
official `kubernetes` client, `kfp.Client`, `requests`) talk to it unchanged.

`ClusterEmulator` is the one Kubernetes API emulator: kmock's, plus what the
real API server does that kmock does not (create on apply, `watch=True`,
`/version/`), and operator stand-ins. `RunningCluster` serves one for a `with`
block and plays the kubelet (pods through the API) and faults (5xx, 429, a
dropped or expired watch, as kmock reactions).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import kmock
from kmock._internal import enums
from kubernetes import client

from hello_kubeflow.kube.client import TimedApiClient, api_client
from hello_kubeflow.settings import Settings

SELDON = "machinelearning.seldon.io/v1/seldondeployments"
MAX_REQUEST_BODY = 3 * 1024 * 1024
"""The API server's default request body limit (kubernetes/kubernetes,
`staging/src/k8s.io/apiserver/pkg/server/config.go`, MaxRequestBodyBytes): big
CRDs such as Seldon's (about 2 MB as JSON) fit; aiohttp's own default (1 MiB) would not."""
KSERVE = "serving.kserve.io/v1beta1/inferenceservices"
POLICIES = "security.istio.io/v1beta1/authorizationpolicies"  # Istio's, where it is installed
_BUILT_IN = (("v1/pods", "Pod", True), ("v1/nodes", "Node", False), ("batch/v1/jobs", "Job", True))


class _ApiTestServer(aiohttp.test_utils.RawTestServer):
    """aiohttp's raw test server, taking request bodies up to `MAX_REQUEST_BODY`."""

    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> aiohttp.web.ServerRunner:
        def request(*args: Any) -> aiohttp.web.BaseRequest:
            return aiohttp.web.BaseRequest(
                *args, loop=server._loop, client_max_size=MAX_REQUEST_BODY
            )

        server = aiohttp.web.Server(
            self._handler, loop=self._loop, debug=debug, request_factory=request, **kwargs
        )
        return aiohttp.web.ServerRunner(server, debug=debug, **kwargs)


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
            async with handler, kmock.Server(handler, server_cls=_ApiTestServer) as server:
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


class ClusterEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """`KubernetesEmulator` answering as a real API server does where kmock differs.

    A real API server answers an apply patch (`application/apply-patch+yaml`)
    for a missing object by creating it; kmock's emulator only patches existing
    ones, so the missing object is created empty first, then patched as usual.
    The official client watches with `watch=True` (kmock knows only `true`) and
    asks its version at `/version/` (kmock serves it without the slash).
    Pods, nodes and jobs are known resource types from the start.
    """

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.controllers: list[Callable[[ClusterEmulator, Any], None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        for resource, kind, namespaced in _BUILT_IN:
            self.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=namespaced)
        (self.fallback**1)[kmock.params({"watch": "True"})] << self._serve_watch
        self["get /version/"] << self._serve_server_version

    async def __aenter__(self) -> ClusterEmulator:
        self.loop = asyncio.get_running_loop()  # where kmock must be touched (`RunningCluster`)
        await super().__aenter__()
        return self

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

    async def _serve_list(self, request: Any) -> Any:
        """A list, filtered by `labelSelector` as the API server filters it (kmock ignores it).

        Equality-based requirements only, comma-joined (`k=v`, `k==v`, `k!=v`):
        Kubernetes docs, "Labels and Selectors", equality-based requirement. As
        the API server matches them (kubernetes/apimachinery, the tag of kubernetes
        v1.34, pkg/labels/selector.go): `Parse` ANDs the comma-separated
        requirements; `Requirement.Matches` wants the key present with the value
        for `=`/`==`, and for `!=` a key absent or with another value.
        """
        answer = await super()._serve_list(request)
        selector = str(request.params.get("labelSelector") or "")
        if not selector:
            return answer
        requirements = []
        for part in selector.split(","):
            key, negated, value = re.fullmatch(r"\s*([^!=\s]+)\s*(!?)==?\s*(\S*)\s*", part).groups()  # type: ignore[union-attr]
            requirements.append((key, bool(negated), value))

        def selected(item: dict[str, Any]) -> bool:
            labels = (item.get("metadata") or {}).get("labels") or {}
            return all((labels.get(k) == v) != negated for k, negated, v in requirements)

        return {**answer, "items": [item for item in answer["items"] if selected(item)]}

    def declare(self, *resources: str) -> None:
        """Make resources (e.g. `SELDON`) known to API discovery, as installed CRDs are."""
        for resource in resources:
            kind = "SeldonDeployment" if resource == SELDON else "InferenceService"
            if resource.endswith("/pods"):
                kind = "Pod"
            if resource == POLICIES:
                kind = "AuthorizationPolicy"
            self.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True)

    def live(self, resource: str) -> list[tuple[Any, str | None, str]]:
        """The keys (resource, namespace, name) of the objects of `resource` not deleted."""
        wanted = kmock.resource(resource)
        return [k for k in self.objects if k[0] == wanted and not self.objects[k].deleted]

    def stored(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the emulator holds it, or None when absent or deleted."""
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return dict(json.loads(json.dumps(self.objects[key].raw)))


class RunningCluster:
    """A `ClusterEmulator` served on a free port of 127.0.0.1 for a `with` block.

    Tests play the kubelet through the official client (create a pod, patch
    its status); the emulator streams those changes to watches.
    """

    def __init__(self, emulator: ClusterEmulator | None = None) -> None:
        self.emulator = emulator if emulator is not None else ClusterEmulator()
        self.url = ""
        self._stack = ExitStack()

    def __enter__(self) -> RunningCluster:
        self.url = self._stack.enter_context(serving(self.emulator))
        configuration = client.Configuration()
        configuration.host = self.url
        self.core = client.CoreV1Api(client.ApiClient(configuration))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def call(self, function: Callable[[], Any]) -> Any:
        """Run `function` in the emulator's event loop (where kmock must be touched)."""
        assert self.emulator.loop is not None, "use RunningCluster in a `with` block"

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.emulator.loop).result(10)

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
        return write_kubeconfig(
            directory / "kubeconfig",
            self.url,
            context="emulated",
            cluster="emulator",
            user="tester",
            token="not-a-secret",
        )

    def settings(self, directory: Path, **changes: Any) -> Settings:
        """Settings for talking to this emulator, with short timeouts."""
        fields: dict[str, Any] = {
            "kubeconfig": self.kubeconfig(directory),
            "kube_request_timeout": 5.0,
        }
        fields.update(changes)
        return Settings(**fields)


def settings_api(settings: Settings) -> TimedApiClient:
    """The API client `settings` select: kubeconfig, context, request timeout."""
    return api_client(*settings.kube_access)


def write_kubeconfig(
    path: Path,
    server: str,
    *,
    context: str = "emulator",
    cluster: str = "",
    user: str = "",
    token: str = "",
) -> Path:
    """A kubeconfig whose only context points at `server` (credentials: `token` or none).

    The cluster and user are named after the context unless named.
    """
    cluster, user = cluster or context, user or context
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": token} if token else {}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
    }
    path.write_text(json.dumps(config))
    return path


class Operator:
    """Plays a serving operator: each read of the resource shows the next status.

    An apply (a new spec) starts the statuses over, as a real operator
    reconciles again; the last status then stays. It also plays the Deployment
    under the resource: `pods_after` reads after an apply, a Ready pod made
    from the new pod template (labels, annotations) replaces the model's
    earlier pods (`None`: the new pods never come up).
    """

    def __init__(
        self, resource: str, *statuses: dict[str, Any], pods_after: int | None = 0
    ) -> None:
        self.resource = kmock.resource(resource)
        self.statuses = list(statuses)
        self.index = 0
        self.pods_after = pods_after
        self.template: dict[str, Any] | None = None  # applied, its pods not made yet
        self.rollouts = 0

    def __call__(self, emulator: ClusterEmulator, request: Any) -> None:
        if request.resource != self.resource or not request.name:
            return
        if request.action == enums.action.UPDATE:
            self.index = 0
            spec = (request.data or {}).get("spec") or {}
            if self.resource == kmock.resource(SELDON):
                components = (spec.get("predictors") or [{}])[0].get("componentSpecs") or [{}]
                self.template = dict(components[0].get("metadata") or {})
            else:  # KServe: the predictor's annotations go on its pods' template
                self.template = {"annotations": (spec.get("predictor") or {}).get("annotations")}
            return
        key = (request.resource, request.namespace, request.name)
        if request.action != enums.action.FETCH or key not in emulator.objects:
            return
        if emulator.objects[key].deleted:
            return
        due = self.pods_after is not None and self.index >= self.pods_after
        if self.template is not None and due:
            self._roll_pods(emulator, request.namespace, request.name, self.template)
            self.template = None
        status = self.statuses[min(self.index, len(self.statuses) - 1)]
        self.index += 1
        emulator.objects[key].patch({"status": None})  # an operator writes the whole status
        emulator.objects[key].patch({"status": status})

    def _roll_pods(
        self, emulator: ClusterEmulator, namespace: str, name: str, template: dict[str, Any]
    ) -> None:
        """Replace the model's pods by one Ready pod made from `template`."""
        pods = kmock.resource("v1/pods")
        seldon_made = self.resource == kmock.resource(SELDON)
        label = "seldon-deployment-id" if seldon_made else "serving.kserve.io/inferenceservice"
        for key in list(emulator.objects):
            if key[0] != pods or key[1] != namespace or emulator.objects[key].deleted:
                continue
            labels = (emulator.objects[key].get("metadata") or {}).get("labels") or {}
            if labels.get(label) == name:
                emulator.objects[key].delete()
        self.rollouts += 1
        made = seldon_pod if seldon_made else kserve_pod
        pod = made(namespace, name, self.rollouts, template.get("annotations") or {})
        emulator.objects[pods, namespace, pod["metadata"]["name"]] = pod


def seldon_pod(
    namespace: str, name: str, number: int, annotations: dict[str, str], *, ready: bool = True
) -> dict[str, Any]:
    """A pod of SeldonDeployment `name`, as its Deployment makes it (Running and Ready)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-default-0-classifier-{number}",
            "namespace": namespace,
            "labels": {"seldon-deployment-id": name},
            "annotations": dict(annotations),
        },
        "spec": {"containers": [{"name": "classifier"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "classifier", "ready": ready, "restartCount": 0, "state": {"running": {}}}
            ],
        },
    }


def kserve_pod(
    namespace: str,
    name: str,
    number: int,
    annotations: dict[str, str],
    *,
    ready: bool = True,
    container: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A predictor pod of InferenceService `name` in Standard mode, as its Deployment makes it.

    The labels are the predictor's (kserve v0.20.0, pkg/controller/v1beta1/inferenceservice/
    components/predictor.go `buildObjectMeta`; reconcilers/deployment/deployment_reconciler.go
    adds `app: isvc.<name>-predictor`, pkg/constants/constants.go `GetRawServiceLabel`), the
    container is `kserve-container` (`InferenceServiceContainerName`). `container`: its status
    (default Running and `ready`).
    """
    state = container or {
        "name": "kserve-container",
        "ready": ready,
        "restartCount": 0,
        "state": {"running": {}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-predictor-{number}",
            "namespace": namespace,
            "labels": {
                "serving.kserve.io/inferenceservice": name,
                "component": "predictor",
                "app": f"isvc.{name}-predictor",
            },
            "annotations": dict(annotations),
        },
        "spec": {"containers": [{"name": "kserve-container"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if state["ready"] else "False"}],
            "containerStatuses": [state],
        },
    }


# A Deployment's conditions as its controller writes them: kubernetes/kubernetes v1.34,
# pkg/controller/deployment/util/deployment_util.go (the reasons) and sync.go / progress.go
# (the messages, "ReplicaSet %q is progressing.", "... has successfully progressed.").
_DEPLOYMENT_CONDITIONS = {
    "starting": (
        ("Available", "False", "MinimumReplicasUnavailable"),
        ("Progressing", "True", "ReplicaSetUpdated"),
    ),
    "rolling": (  # the old pods still available, the new ReplicaSet's coming up
        ("Available", "True", "MinimumReplicasAvailable"),
        ("Progressing", "True", "ReplicaSetUpdated"),
    ),
    "complete": (
        ("Available", "True", "MinimumReplicasAvailable"),
        ("Progressing", "True", "NewReplicaSetAvailable"),
    ),
}
_DEPLOYMENT_MESSAGES = {
    "MinimumReplicasUnavailable": "Deployment does not have minimum availability.",
    "MinimumReplicasAvailable": "Deployment has minimum availability.",
    "ReplicaSetUpdated": 'ReplicaSet "{rs}" is progressing.',
    "NewReplicaSetAvailable": 'ReplicaSet "{rs}" has successfully progressed.',
}


def kserve_standard(
    *phases: str, generation: int = 1, host: str = "mnist-classifier-kubeflow.example.com"
) -> list[dict[str, Any]]:
    """InferenceService statuses in Standard mode, one per phase of its Deployment.

    As kserve v0.20.0 writes them (pkg/apis/serving/v1beta1/inference_service_status.go,
    `PropagateRawStatus`, one Deployment): PredictorReady follows the Deployment's
    Available condition, is True with Progressing `NewReplicaSetAvailable`, and stays
    True during `ReplicaSetUpdated` while Available is True (the old pods answer); the
    URL is set once it is True; `observedGeneration` is the Deployment's (`generation`),
    not the InferenceService's. Ready is the living condition set of PredictorReady and
    IngressReady (`conditionSet`), IngressReady True here: Ready is PredictorReady.

    Args:
        phases: `starting`, `rolling` (a new ReplicaSet while the old pods serve), `complete`.
        generation: the Deployment's observed generation.
        host: the URL's host (the Standard mode `domainTemplate`).
    """
    statuses = []
    for phase in phases:
        conditions = {
            kind: {"status": status, "reason": reason}
            for kind, status, reason in _DEPLOYMENT_CONDITIONS[phase]
        }
        rs = f"mnist-classifier-predictor-{generation}"
        for condition in conditions.values():
            condition["message"] = _DEPLOYMENT_MESSAGES[condition["reason"]].format(rs=rs)
        available, progressing = conditions["Available"], conditions["Progressing"]
        predictor = {"status": "False", "reason": ""}
        if available["status"] == "True":
            predictor = dict(available)
        if progressing["reason"] == "NewReplicaSetAvailable":
            predictor = dict(progressing)
        if available["status"] == "False":
            predictor = dict(available)
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "deploymentMode": "Standard",
            "conditions": [
                {"type": "IngressReady", "status": "True"},
                {"type": "PredictorReady", **predictor},
                # knative.dev/pkg apis/condition_set.go: a happy Ready carries no reason
                {
                    "type": "Ready",
                    **(predictor if predictor["status"] != "True" else {"status": "True"}),
                },
            ],
        }
        if predictor["status"] == "True":
            status["url"] = f"http://{host}"
        statuses.append(status)
    return statuses


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
    """InferenceService statuses of a model server that cannot load the model.

    The `modelStatus` kserve v0.20.0 writes for it (pkg/apis/serving/v1beta1/
    inference_service_status.go: `PropagateModelStatus` sets the target state
    `FailedToLoad`, `UpdateModelRevisionStates` the transition `BlockedByFailedLoad`
    with `SetModelFailureInfo`, reason `ModelLoadFailed`), beside Ready False.
    """
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
