"""An emulator of the Kubeflow Pipelines v2beta1 REST API on `kmock` raw handlers.

It answers the endpoints `kfp.Client` calls (healthz, pipelines upload and
versions, experiments, runs create/get) from an in-memory store, so the real
SDK drives it over real HTTP. A test scripts how a run goes (`script`), how
long the API answers 503 (`unavailable`), and which credentials it demands.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import kmock

Step = tuple[str, str]  # (display name, state)


@dataclass
class Snapshot:
    """What `GET /runs/{id}` shows at one poll: the run's state and its steps."""

    state: str
    steps: list[Step] = field(default_factory=list)
    error: str = ""
    step_errors: dict[str, str] = field(default_factory=dict)


def succeeding() -> list[Snapshot]:
    """A run that goes PENDING -> RUNNING (step by step) -> SUCCEEDED."""
    return [
        Snapshot("PENDING"),
        Snapshot("RUNNING", [("load MNIST", "RUNNING")]),
        Snapshot("RUNNING", [("load MNIST", "SUCCEEDED"), ("train random forest", "RUNNING")]),
        Snapshot(
            "SUCCEEDED",
            [
                ("load MNIST", "SUCCEEDED"),
                ("train random forest", "SUCCEEDED"),
                ("evaluate on test set", "SUCCEEDED"),
                ("deploy model", "SUCCEEDED"),
            ],
        ),
    ]


def failing(step: str = "train random forest", message: str = "OOMKilled") -> list[Snapshot]:
    """A run whose `step` fails with `message`."""
    return [
        Snapshot("RUNNING", [("load MNIST", "RUNNING")]),
        Snapshot(
            "FAILED",
            [("load MNIST", "SUCCEEDED"), (step, "FAILED")],
            error="a task failed",
            step_errors={step: message},
        ),
    ]


def canceled() -> list[Snapshot]:
    """A run canceled by someone in the UI while training."""
    return [
        Snapshot("RUNNING", [("load MNIST", "SUCCEEDED"), ("train random forest", "RUNNING")]),
        Snapshot("CANCELING", [("load MNIST", "SUCCEEDED"), ("train random forest", "RUNNING")]),
        Snapshot("CANCELED", [("load MNIST", "SUCCEEDED"), ("train random forest", "CANCELED")]),
    ]


def never_ending() -> list[Snapshot]:
    """A run that stays RUNNING forever."""
    return [Snapshot("RUNNING", [("load MNIST", "RUNNING")])]


class KfpEmulator:
    """In-memory KFP API state plus the `kmock.RawHandler` serving it."""

    def __init__(self) -> None:
        self.handler = kmock.RawHandler()
        self.handler.fallback << self._dispatch
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
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
                return kmock.Response(
                    status=self.unavailable_status, payload=b"upstream connect error"
                )
            if not self._authorized(request):
                return kmock.Response(status=401, payload=b"Origin authentication failed.")
            for pattern, method, route in self._routes():
                match = re.fullmatch(pattern, path)
                if match and str(request.method.value) == method:
                    status, payload = route(request, *match.groups())
                    return kmock.Response(status=status, payload=payload)
        return kmock.Response(status=404, payload={"error": f"no route for {path}", "code": 5})

    def _authorized(self, request: Any) -> bool:
        if self.token is not None:
            return request.headers.get("Authorization") == f"Bearer {self.token}"
        if self.cookie is not None:
            name, value = self.cookie
            return request.cookies.get(name) == value
        return True

    def _routes(self) -> list[tuple[str, str, Any]]:
        v2 = "/apis/v2beta1"
        return [
            (f"{v2}/healthz", "GET", self._healthz),
            (f"{v2}/pipelines/upload", "POST", self._upload),
            (f"{v2}/pipelines/upload_version", "POST", self._upload_version),
            (f"{v2}/pipelines", "GET", self._list_pipelines),
            (f"{v2}/pipelines/([^/]+)/versions", "GET", self._list_versions),
            (f"{v2}/experiments", "GET", self._list_experiments),
            (f"{v2}/experiments", "POST", self._create_experiment),
            (f"{v2}/runs", "POST", self._create_run),
            (f"{v2}/runs/([^/:]+)", "GET", self._get_run),
        ]

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids)}"

    # ---- endpoints

    def _healthz(self, request: Any) -> tuple[int, Any]:
        return 200, {"multi_user": self.multi_user}

    def _upload(self, request: Any) -> tuple[int, Any]:
        name = request.params.get("name") or request.params.get("display_name")
        if any(p["display_name"] == name for p in self.pipelines.values()):
            return 409, {"error": f"pipeline {name} already exists", "code": 6}
        self.uploads.append(_uploaded_file(request))
        pipeline_id = self._new_id("pipeline")
        pipeline = {"pipeline_id": pipeline_id, "display_name": name}
        self.pipelines[pipeline_id] = pipeline
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._new_id("version"),
            "display_name": name,
        }
        self.versions[pipeline_id] = [version]
        return 200, pipeline

    def _upload_version(self, request: Any) -> tuple[int, Any]:
        pipeline_id = request.params.get("pipelineid", "")
        name = request.params.get("name")
        if pipeline_id not in self.pipelines:
            return 404, {"error": f"pipeline {pipeline_id} not found", "code": 5}
        if any(v["display_name"] == name for v in self.versions[pipeline_id]):
            return 409, {"error": f"version {name} already exists", "code": 6}
        self.uploads.append(_uploaded_file(request))
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._new_id("version"),
            "display_name": name,
        }
        self.versions[pipeline_id].insert(0, version)  # newest first
        return 200, version

    def _list_pipelines(self, request: Any) -> tuple[int, Any]:
        items = _filtered(list(self.pipelines.values()), request.params.get("filter"))
        return 200, {"pipelines": items, "total_size": len(items)}

    def _list_versions(self, request: Any, pipeline_id: str) -> tuple[int, Any]:
        items = _filtered(self.versions.get(pipeline_id, []), request.params.get("filter"))
        if request.params.get("page_size"):
            items = items[: int(request.params["page_size"])]
        return 200, {"pipeline_versions": items, "total_size": len(items)}

    def _list_experiments(self, request: Any) -> tuple[int, Any]:
        items = _filtered(list(self.experiments.values()), request.params.get("filter"))
        return 200, {"experiments": items, "total_size": len(items)}

    def _create_experiment(self, request: Any) -> tuple[int, Any]:
        body = request.data or {}
        experiment = {
            "experiment_id": self._new_id("experiment"),
            "display_name": body.get("display_name"),
            "namespace": body.get("namespace") or "",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return 200, experiment

    def _create_run(self, request: Any) -> tuple[int, Any]:
        body = request.data or {}
        run_id = self._new_id("run")
        self.runs[run_id] = {"body": body, "polls": 0}
        if self.on_run_created is not None:
            self.on_run_created(run_id, body)
        return 200, self._render_run(run_id, Snapshot("PENDING"))

    def _get_run(self, request: Any, run_id: str) -> tuple[int, Any]:
        if run_id not in self.runs:
            return 404, {"error": f"run {run_id} not found", "code": 5}
        run = self.runs[run_id]
        snapshot = self.script[min(run["polls"], len(self.script) - 1)]
        run["polls"] += 1
        return 200, self._render_run(run_id, snapshot)

    def _render_run(self, run_id: str, snapshot: Snapshot) -> dict[str, Any]:
        body = self.runs[run_id]["body"]
        tasks: list[dict[str, Any]] = [
            {
                "run_id": run_id,
                "task_id": f"{run_id}-root",
                "display_name": body.get("display_name", ""),
                "state": snapshot.state,
                "child_tasks": [{"task_id": f"{run_id}-{i}"} for i, _ in enumerate(snapshot.steps)],
            }
        ]
        for i, (name, state) in enumerate(snapshot.steps):
            task: dict[str, Any] = {
                "run_id": run_id,
                "task_id": f"{run_id}-{i}",
                "display_name": name,
                "state": state,
            }
            if name in snapshot.step_errors:
                task["error"] = {"code": 2, "message": snapshot.step_errors[name]}
            tasks.append(task)
        run: dict[str, Any] = {
            "run_id": run_id,
            "display_name": body.get("display_name", ""),
            "experiment_id": body.get("experiment_id", ""),
            "state": snapshot.state,
            "pipeline_version_reference": body.get("pipeline_version_reference"),
            "runtime_config": body.get("runtime_config"),
            "run_details": {"task_details": tasks},
        }
        if snapshot.error:
            run["error"] = {"code": 2, "message": snapshot.error}
        return run

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


def _uploaded_file(request: Any) -> bytes:
    """The `uploadfile` part of a multipart upload."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    raise AssertionError("the upload carried no 'uploadfile' part")
