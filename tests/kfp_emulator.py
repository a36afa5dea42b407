"""An emulator of the Kubeflow Pipelines v2beta1 REST API, with the backend's own shapes.

It answers the endpoints `kfp.Client` calls (healthz, pipelines create, upload
and versions, experiments, runs create/get) from an in-memory store over real
HTTP (`kmock` raw handlers), so the real SDK drives it. Every JSON answer is
checked against the v2beta1 swagger of kubeflow/pipelines 2.17.0
(`backend/api/v2beta1/swagger/kfp_api_single_file.swagger.json`, a copy in
../shared/upstream/; a test using the emulator skips without it): the response
schema of the path and method, with no field the schema does not define. An
answer that does not fit fails the test.

A run is scripted as the Argo workflow the backend would watch: each snapshot
gives the run's state and each step's Argo phase by task key. The run's
`task_details` are made from the workflow's nodes the way the backend does
(kubeflow/pipelines 2.17.0):

- the nodes are those the v2 Argo compiler makes: the workflow's own DAG node,
  `root-driver` and `root`, then per task `<key>-driver`, `<key>` (the task's
  DAG) and the pod `executor` inside it
  (backend/src/v2/compiler/argocompiler/dag.go, container.go);
- one task per node, sorted by node ID, `display_name` = the node's display
  name, `state` = its phase in upper case mapped by `RuntimeState.ToV2`
  (Error -> FAILED), `child_tasks` = `{pod_name: <child node ID>}`, a random
  `task_id`, no `error`, no `parent_task_id`
  (backend/src/apiserver/server/api_converter.go `toModelTasks`,
  `toModelTask`, `toApiPipelineTaskDetail`; backend/src/common/util/workflow.go
  `NodeStatuses`; backend/src/apiserver/model/run.go `ToV2`);
- fields left empty are left out (`EmitUnpopulated: false`,
  backend/src/apiserver/common/utils.go).

A package's YAML documents are read as the backend reads them
(backend/src/apiserver/template/v2_template.go `NewV2SpecTemplate`,
`IsPlatformSpecWithKubernetesConfig`; template.go `isPipelineSpec`): the
pipeline spec, and a platform spec only when it parses strictly (protojson:
an unknown field makes it no platform spec, silently ignored) as
`PlatformSpec` with a `kubernetes` platform. A version with one is answered as
`{"pipeline_spec": ..., "platform_spec": ...}` (server/api_util.go
`YamlStringToPipelineSpecStruct`). Creating a run parses each executor's
Kubernetes config strictly as `KubernetesExecutorConfig`
(v2/compiler/visitor.go, argocompiler/container.go: an error fails the run's
creation) and resolves its image pull secrets as the driver does
(v2/driver/k8s.go: `secret_name_parameter` first, else `secret_name`): the
executor pod lists them in `spec.imagePullSecrets`. The messages are the
generated Python classes of the same protos (kfp-pipeline-spec and
kfp-kubernetes 2.17: kubernetes_platform/proto/kubernetes_executor_config.proto
at 2.17.0).
"""

from __future__ import annotations

import copy
import email.parser
import email.policy
import functools
import itertools
import json
import re
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kmock
import yaml
from crd_schemas import upstream_file
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

SWAGGER = "kubeflow-pipelines-2.17.0/api-v2beta1-swagger/kfp_api_single_file.swagger.json"
# The project's pipeline (pipeline/train_pipeline.py): task key -> display name.
STEPS = {
    "load-data": "load MNIST",
    "train": "train model",
    "evaluate": "evaluate on test set",
    "deploy-model": "deploy model",
}
EPOCH = "1970-01-01T00:00:00Z"  # an unset timestamppb.New(time.Unix(0, 0))
_V2_STATE = {"ERROR": "FAILED", "OMITTED": "RUNTIME_STATE_UNSPECIFIED"}


@dataclass
class Snapshot:
    """What `GET /runs/{id}` shows at one poll: the run's state, each step's Argo phase.

    `phases` maps task keys (in the pipeline's order) to Argo node phases:
    Pending, Running, Succeeded, Failed, Error, Skipped. Steps not there have
    no nodes yet. `error` is the run's own error message (usually empty).
    """

    state: str
    phases: dict[str, str] = field(default_factory=dict)
    error: str = ""


def write_package(path: Path, name: str = "hello-kubeflow-mnist") -> Path:
    """A package shaped as the KFP compiler writes it: steps by task key, with display names."""
    tasks = {key: {"taskInfo": {"name": display}} for key, display in STEPS.items()}
    spec = {"pipelineInfo": {"name": name}, "root": {"dag": {"tasks": tasks}}}
    path.write_text(yaml.safe_dump(spec))
    return path


def succeeding() -> list[Snapshot]:
    """A run that goes PENDING -> RUNNING (step by step) -> SUCCEEDED."""
    return [
        Snapshot("PENDING"),
        Snapshot("RUNNING", {"load-data": "Running"}),
        Snapshot("RUNNING", {"load-data": "Succeeded", "train": "Running"}),
        Snapshot("SUCCEEDED", dict.fromkeys(STEPS, "Succeeded")),
    ]


def failing(key: str = "train") -> list[Snapshot]:
    """A run whose step `key` fails (its executor pod's main container exits non-zero)."""
    return [
        Snapshot("RUNNING", {"load-data": "Running"}),
        Snapshot("FAILED", {"load-data": "Succeeded", key: "Failed"}),
    ]


def canceled() -> list[Snapshot]:
    """A run canceled in the UI while training: Argo fails the nodes it stops."""
    return [
        Snapshot("RUNNING", {"load-data": "Succeeded", "train": "Running"}),
        Snapshot("CANCELING", {"load-data": "Succeeded", "train": "Running"}),
        Snapshot("CANCELED", {"load-data": "Succeeded", "train": "Failed"}),
    ]


def never_ending() -> list[Snapshot]:
    """A run that stays RUNNING forever."""
    return [Snapshot("RUNNING", {"load-data": "Running"})]


@functools.cache
def _swagger() -> dict[str, Any]:
    return dict(json.loads(upstream_file(SWAGGER).read_text()))


def _strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` wherever it lists properties."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _validator(method: str, template: str, status: int) -> Any:
    """The swagger's answer schema for `method template` and `status`, compiled once."""
    spec = _swagger()
    responses = spec["paths"][template][method.lower()]["responses"]
    schema = (responses.get(str(status)) or responses["default"])["schema"]
    document = _strict({**schema, "definitions": spec["definitions"]})
    return jsonschema.Draft4Validator(document)


def check_answer(method: str, template: str, body: Any, status: int = 200) -> None:
    """Fail (AssertionError) unless `body` fits the swagger's answer for `method template`."""
    error = jsonschema.exceptions.best_match(_validator(method, template, status).iter_errors(body))
    if error is not None:
        raise AssertionError(
            f"the KFP emulator's answer to {method} {template} does not fit the 2.17.0 "
            f"swagger: {error.message} at {list(error.absolute_path)}"
        )


class KfpEmulator:
    """In-memory KFP API state plus the `kmock.RawHandler` serving it."""

    def __init__(self) -> None:
        _swagger()  # read here, in the test: without the upstream copy the test skips
        self.handler = kmock.RawHandler()
        self.handler.fallback << self._dispatch
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.platform_specs: dict[str, dict[str, Any]] = {}  # version ID -> platform spec
        self.uploads: list[bytes] = []
        self.seen: list[dict[str, Any]] = []
        self.script: list[Snapshot] = succeeding()
        self.unavailable = 0  # answer this many requests with 503 first
        self.unavailable_paths = re.compile(r".*")
        self.unavailable_status = 503
        self.token: str | None = None  # demand this bearer token
        self.cookie: tuple[str, str] | None = None  # or this cookie (name, value)
        self.multi_user = False
        self.on_run_created: Any = None  # called with (run_id, body): plays the cluster
        self.on_poll: Any = None  # called with (run_id, snapshot) when a run is read

    # ---- plumbing

    def _dispatch(self, request: Any) -> kmock.Response:
        path = request.url.path
        with self.lock:
            self.seen.append(
                {
                    "method": str(request.method.value),
                    "path": path,
                    "params": dict(request.params),
                    "headers": dict(request.headers),
                    "cookies": dict(request.cookies),
                }
            )
            if self.unavailable > 0 and self.unavailable_paths.match(path):
                self.unavailable -= 1
                # What Istio's Envoy answers while the API server is not ready.
                return kmock.Response(
                    status=self.unavailable_status, payload=b"upstream connect error"
                )
            if not self._authorized(request):
                # Istio's answer to a request its RequestAuthentication rejects.
                return kmock.Response(status=401, payload=b"Origin authentication failed.")
            method = str(request.method.value)
            for template, route in self._routes().get(method, {}).items():
                pattern = re.sub(r"\{[^}]+\}", "([^/:]+)", template)
                match = re.fullmatch(pattern, path)
                if match:
                    status, payload = route(request, *match.groups())
                    check_answer(method, template, payload, status)
                    return kmock.Response(status=status, payload=payload)
        return kmock.Response(status=404, payload=b"Not Found")

    def _authorized(self, request: Any) -> bool:
        if self.token is not None:
            return request.headers.get("Authorization") == f"Bearer {self.token}"
        if self.cookie is not None:
            name, value = self.cookie
            return request.cookies.get(name) == value
        return True

    def _routes(self) -> dict[str, dict[str, Any]]:
        v2 = "/apis/v2beta1"
        return {
            "GET": {
                f"{v2}/healthz": self._healthz,
                f"{v2}/pipelines": self._list_pipelines,
                f"{v2}/pipelines/{{pipeline_id}}/versions": self._list_versions,
                f"{v2}/experiments": self._list_experiments,
                f"{v2}/runs/{{run_id}}": self._get_run,
            },
            "POST": {
                f"{v2}/pipelines/upload": self._upload,
                f"{v2}/pipelines/upload_version": self._upload_version,
                f"{v2}/pipelines": self._create_pipeline,
                f"{v2}/experiments": self._create_experiment,
                f"{v2}/runs": self._create_run,
            },
        }

    def _new_id(self) -> str:
        return str(uuid.UUID(int=next(self.ids)))

    @staticmethod
    def _status(code: int, message: str) -> dict[str, Any]:
        """A google.rpc.Status, as grpc-gateway writes errors."""
        return {"code": code, "message": message, "details": []}

    # ---- endpoints

    def _healthz(self, request: Any) -> tuple[int, Any]:
        return 200, {"multi_user": self.multi_user, "pipeline_store": "database"}

    def _pipeline(self, name: str, namespace: str) -> dict[str, Any]:
        pipeline = {
            "pipeline_id": self._new_id(),
            "display_name": name,
            "name": name,
            "created_at": "2026-11-30T20:00:00Z",
        }
        if namespace:
            pipeline["namespace"] = namespace
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self.versions[pipeline["pipeline_id"]] = []
        return pipeline

    def _version(self, pipeline_id: str, name: str, package: bytes) -> dict[str, Any]:
        documents = [doc for doc in yaml.safe_load_all(package) if doc]
        spec = next(iter(documents), None) or {}
        platform = next((doc for doc in documents[1:] if _is_kubernetes_platform(doc)), None)
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._new_id(),
            "display_name": name,
            "name": name,
            "created_at": "2026-11-30T20:00:00Z",
            "pipeline_spec": (
                {"pipeline_spec": spec, "platform_spec": platform} if platform else spec
            ),
        }
        if platform:
            self.platform_specs[version["pipeline_version_id"]] = platform
        self.versions[pipeline_id].insert(0, version)  # newest first
        return version

    def _taken(self, name: str) -> bool:
        return any(p["display_name"] == name for p in self.pipelines.values())

    def _create_pipeline(self, request: Any) -> tuple[int, Any]:
        body = request.data or {}
        name = body.get("display_name") or body.get("name") or ""
        if self._taken(name):
            return 409, self._status(6, f"pipeline {name} already exists")
        return 200, self._pipeline(name, body.get("namespace") or "")

    def _upload(self, request: Any) -> tuple[int, Any]:
        """As the backend: a new pipeline plus a first version named after it."""
        name = request.params.get("name") or request.params.get("display_name") or ""
        if self._taken(name):
            return 409, self._status(6, f"pipeline {name} already exists")
        package = _uploaded_file(request)
        self.uploads.append(package)
        pipeline = self._pipeline(name, request.params.get("namespace") or "")
        self._version(pipeline["pipeline_id"], name, package)
        return 200, pipeline

    def _upload_version(self, request: Any) -> tuple[int, Any]:
        pipeline_id = request.params.get("pipelineid", "")
        name = request.params.get("name") or ""
        if pipeline_id not in self.pipelines:
            return 404, self._status(5, f"pipeline {pipeline_id} not found")
        if any(v["display_name"] == name for v in self.versions[pipeline_id]):
            return 409, self._status(6, f"version {name} already exists")
        package = _uploaded_file(request)
        self.uploads.append(package)
        return 200, self._version(pipeline_id, name, package)

    def _list_pipelines(self, request: Any) -> tuple[int, Any]:
        items = _filtered(list(self.pipelines.values()), request.params.get("filter"))
        return 200, {"pipelines": items, "total_size": len(items)} if items else {}

    def _list_versions(self, request: Any, pipeline_id: str) -> tuple[int, Any]:
        items = _filtered(self.versions.get(pipeline_id, []), request.params.get("filter"))
        if request.params.get("page_size"):
            items = items[: int(request.params["page_size"])]
        return 200, {"pipeline_versions": items, "total_size": len(items)} if items else {}

    def _list_experiments(self, request: Any) -> tuple[int, Any]:
        items = _filtered(list(self.experiments.values()), request.params.get("filter"))
        return 200, {"experiments": items, "total_size": len(items)} if items else {}

    def _create_experiment(self, request: Any) -> tuple[int, Any]:
        body = request.data or {}
        experiment = {
            "experiment_id": self._new_id(),
            "display_name": body.get("display_name"),
            "created_at": "2026-11-30T20:00:00Z",
            "storage_state": "AVAILABLE",
        }
        if body.get("namespace"):
            experiment["namespace"] = body["namespace"]
        self.experiments[experiment["experiment_id"]] = experiment
        return 200, experiment

    def _create_run(self, request: Any) -> tuple[int, Any]:
        body = request.data or {}
        run_id = self._new_id()
        reference = body.get("pipeline_version_reference") or {}
        versions = self.versions.get(reference.get("pipeline_id", ""), [])
        version = next(
            (
                v
                for v in versions
                if v["pipeline_version_id"] == reference.get("pipeline_version_id")
            ),
            None,
        )
        if version is None:
            return 404, self._status(5, "pipeline version not found")
        spec = version["pipeline_spec"].get("pipeline_spec") or version["pipeline_spec"]
        info = (spec.get("pipelineInfo") or {}).get("name") or "pipeline"
        try:
            pull_secrets = _pull_secrets(
                spec, self.platform_specs.get(version["pipeline_version_id"])
            )
        except json_format.ParseError as exc:
            # resource_manager.go CreateRun: util.Wrap of the compiler's plain error (Unknown)
            return 500, self._status(
                2,
                "Failed to generate the ExecutionSpec: Failed to compile job: "
                f"failed to unmarshal kubernetes config: {exc}",
            )
        workflow = f"{info}-{zlib.crc32(run_id.encode()) % 100000:05d}"
        self.runs[run_id] = {
            "body": body,
            "polls": 0,
            "workflow": workflow,
            "task_ids": {},
            "pull_secrets": pull_secrets,
        }
        if self.on_run_created is not None:
            self.on_run_created(run_id, body)
        return 200, self._render_run(run_id, Snapshot("PENDING"))

    def _get_run(self, request: Any, run_id: str) -> tuple[int, Any]:
        if run_id not in self.runs:
            return 404, self._status(5, f"run {run_id} not found")
        run = self.runs[run_id]
        snapshot = self.script[min(run["polls"], len(self.script) - 1)]
        run["polls"] += 1
        if self.on_poll is not None:
            self.on_poll(run_id, snapshot)
        return 200, self._render_run(run_id, snapshot)

    # ---- Argo nodes and the tasks the backend makes of them

    def node_id(self, run_id: str, node_name: str) -> str:
        """An Argo node ID: `<workflow name>-<hash of the node's name>` (Argo's NodeID)."""
        workflow = self.runs[run_id]["workflow"]
        if node_name == workflow:
            return str(workflow)
        return f"{workflow}-{zlib.crc32(node_name.encode())}"

    def _nodes(self, run_id: str, snapshot: Snapshot) -> list[dict[str, Any]]:
        """The workflow's nodes (name, display name, phase, children) at `snapshot`."""
        workflow = self.runs[run_id]["workflow"]
        if snapshot.state == "PENDING" and not snapshot.phases:
            return []
        run_phase = {"SUCCEEDED": "Succeeded", "FAILED": "Failed", "CANCELED": "Failed"}.get(
            snapshot.state, "Running"
        )
        nodes: list[dict[str, Any]] = []

        def add(name: str, display: str, phase: str) -> dict[str, Any]:
            node = {"name": name, "display": display, "phase": phase, "children": []}
            nodes.append(node)
            return node

        top = add(workflow, workflow, run_phase)
        driver = add(f"{workflow}.root-driver", "root-driver", "Succeeded")
        top["children"].append(self.node_id(run_id, driver["name"]))
        root = add(f"{workflow}.root", "root", run_phase)
        driver["children"].append(self.node_id(run_id, root["name"]))
        previous = root
        for key, phase in snapshot.phases.items():
            step_driver = add(f"{workflow}.root.{key}-driver", f"{key}-driver", "Succeeded")
            previous["children"].append(self.node_id(run_id, step_driver["name"]))
            step = add(f"{workflow}.root.{key}", key, phase)
            step_driver["children"].append(self.node_id(run_id, step["name"]))
            executor = add(f"{workflow}.root.{key}.executor", "executor", phase)
            step["children"].append(self.node_id(run_id, executor["name"]))
            previous = executor
        return nodes

    def _render_run(self, run_id: str, snapshot: Snapshot) -> dict[str, Any]:
        record = self.runs[run_id]
        body = record["body"]
        nodes = sorted(self._nodes(run_id, snapshot), key=lambda n: self.node_id(run_id, n["name"]))
        tasks: list[dict[str, Any]] = []
        for node in nodes:
            state = node["phase"].upper()
            task: dict[str, Any] = {
                "run_id": run_id,
                "task_id": record["task_ids"].setdefault(node["name"], str(uuid.uuid4())),
                "display_name": node["display"],
                "create_time": "2026-11-30T20:00:00Z",
                "start_time": "2026-11-30T20:00:01Z",
                "end_time": EPOCH if state in ("RUNNING", "PENDING") else "2026-11-30T20:01:00Z",
                "state": _V2_STATE.get(state, state),
            }
            if node["children"]:
                task["child_tasks"] = [{"pod_name": child} for child in node["children"]]
            tasks.append(task)
        run: dict[str, Any] = {
            "experiment_id": body.get("experiment_id", ""),
            "run_id": run_id,
            "display_name": body.get("display_name", ""),
            "storage_state": "AVAILABLE",
            "pipeline_version_reference": body.get("pipeline_version_reference"),
            "runtime_config": body.get("runtime_config") or {},
            "service_account": body.get("service_account") or "pipeline-runner",
            "created_at": "2026-11-30T20:00:00Z",
            "scheduled_at": "2026-11-30T20:00:00Z",
            "finished_at": EPOCH,
            "state": snapshot.state,
        }
        if snapshot.error:
            run["error"] = self._status(2, snapshot.error)
        if tasks:
            run["run_details"] = {"task_details": tasks}
        return copy.deepcopy(run)

    # ---- what Argo puts in the cluster

    def executor_pod(
        self, run_id: str, key: str, namespace: str, *, reason: str, exit_code: int
    ) -> dict[str, Any]:
        """The failed executor pod of step `key`, as Argo v4 makes it.

        Name by `RetrievePodName` (kubeflow/pipelines 2.17.0,
        backend/src/common/util/workflow.go: `<workflow>-<template>-<hash>`,
        the executor's template being `system-container-impl`); label and
        annotations by argoproj/argo-workflows v4.0.5,
        workflow/common/common.go; the step runs in container `main`.
        """
        workflow = self.runs[run_id]["workflow"]
        node_name = f"{workflow}.root.{key}.executor"
        node_id = self.node_id(run_id, node_name)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{workflow}-system-container-impl-{node_id.rsplit('-', 1)[1]}",
                "namespace": namespace,
                "labels": self._pod_labels(run_id),
                "annotations": {
                    "workflows.argoproj.io/node-id": node_id,
                    "workflows.argoproj.io/node-name": node_name,
                },
            },
            "spec": {
                "containers": [{"name": "wait"}, {"name": "main"}],
                **self.pod_spec_patch(run_id, key),
            },
            "status": {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "main",
                        "state": {"terminated": {"reason": reason, "exitCode": exit_code}},
                    }
                ],
            },
        }

    def pending_pod(
        self, run_id: str, key: str, namespace: str, *, image: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """The executor pod of step `key` that has not started, with the kubelet's `status`.

        Shaped as `executor_pod`: Argo's wait container beside the step's
        `main`, which runs the pipeline's image. The wait container's image is
        the workflow-controller's `--executor-image` (kubeflow/pipelines 2.17.0,
        manifests/kustomize/env/platform-agnostic, rendered in
        ../shared/upstream/kubeflow-pipelines-2.17.0/env-platform-agnostic.yaml:
        `quay.io/argoproj/argoexec:v4.0.5`).
        """
        pod = self.executor_pod(run_id, key, namespace, reason="", exit_code=0)
        pod["spec"]["containers"] = [
            {"name": "wait", "image": "quay.io/argoproj/argoexec:v4.0.5"},
            {"name": "main", "image": image},
        ]
        pod["status"] = status
        return pod

    def _pod_labels(self, run_id: str) -> dict[str, str]:
        """Labels of every pod of a run's workflow.

        `workflows.argoproj.io/workflow` from Argo (argoproj/argo-workflows
        v4.0.5, workflow/common/common.go); `pipeline/runid`, which the API
        server puts in the workflow's `spec.podMetadata.labels`
        (kubeflow/pipelines 2.17.0, backend/src/apiserver/template/v2_template.go
        `SetPodMetadataLabels`, util.LabelKeyWorkflowRunId in
        backend/src/common/util/consts.go) and Argo copies onto each pod
        (workflow/controller/workflowpod.go).
        """
        return {
            "workflows.argoproj.io/workflow": self.runs[run_id]["workflow"],
            "pipeline/runid": run_id,
        }

    def pod_spec_patch(self, run_id: str, key: str) -> dict[str, Any]:
        """What the driver adds to step `key`'s pod spec from its Kubernetes config.

        kubeflow/pipelines 2.17.0, backend/src/v2/driver/k8s.go: each
        `imagePullSecret` becomes `{"name": ...}` in the pod spec patch.
        """
        names = self.runs[run_id].get("pull_secrets", {}).get(key) or []
        return {"imagePullSecrets": [{"name": n} for n in names]} if names else {}

    # ---- for assertions

    def requests_to(self, pattern: str) -> list[dict[str, Any]]:
        """The requests seen whose path matches `pattern` (a regular expression)."""
        return [r for r in self.seen if re.fullmatch(pattern, r["path"])]


def _filtered(items: list[dict[str, Any]], raw_filter: str | None) -> list[dict[str, Any]]:
    if not raw_filter:
        return items
    for predicate in json.loads(raw_filter).get("predicates", []):
        key, value = (
            predicate.get("key"),
            predicate.get("stringValue", predicate.get("string_value")),
        )
        items = [item for item in items if item.get(key) == value]
    return items


def _is_kubernetes_platform(document: dict[str, Any]) -> bool:
    """`IsPlatformSpecWithKubernetesConfig`: a strict `PlatformSpec` with a kubernetes platform."""
    try:
        json_format.ParseDict(document, pipeline_spec_pb2.PlatformSpec())
    except json_format.ParseError:
        return False
    return "kubernetes" in (document.get("platforms") or {})


def _pull_secrets(spec: dict[str, Any], platform: dict[str, Any] | None) -> dict[str, list[str]]:
    """Task key -> the image pull secrets its pod gets (visitor.go, k8s.go).

    Only the shape the project compiles is read: kfp-kubernetes 2.17's
    `set_image_pull_secrets` with a plain string puts it in
    `secret_name_parameter.runtime_value.constant` (kfp/kubernetes/image.py,
    common.py `parse_k8s_parameter_input`).

    Raises:
        json_format.ParseError: an executor's config is not a `KubernetesExecutorConfig`.
        NotImplementedError: a pull secret given any other way (a pipeline
            parameter, a task output, the deprecated `secret_name` alone).
    """
    if platform is None:
        return {}
    executors = (platform["platforms"]["kubernetes"].get("deploymentSpec") or {}).get(
        "executors"
    ) or {}
    components = spec.get("components") or {}
    found: dict[str, list[str]] = {}
    for key, task in ((spec.get("root") or {}).get("dag") or {}).get("tasks", {}).items():
        component = components.get((task.get("componentRef") or {}).get("name"), {})
        config = executors.get(component.get("executorLabel"))
        if config is None:
            continue
        parsed = json_format.ParseDict(
            config, kubernetes_executor_config_pb2.KubernetesExecutorConfig()
        )
        names = []
        for secret in parsed.image_pull_secret:
            given = secret.secret_name_parameter
            if not given.HasField("runtime_value"):
                raise NotImplementedError(
                    f"task {key!r}: the KFP emulator reads an image pull secret only as a "
                    "constant (set_image_pull_secrets with a str), not as a parameter "
                    f"or the deprecated secret_name alone: {secret}"
                )
            names.append(given.runtime_value.constant.string_value)
        found[key] = names
    return found


def _uploaded_file(request: Any) -> bytes:
    """The `uploadfile` part of a multipart upload."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    raise AssertionError("the upload carried no 'uploadfile' part")
