"""Pipelines, experiments and runs on Kubeflow Pipelines: upload, start, follow.

`follow_run` is our own loop: the SDK's `wait_for_run_completion` never returns for a
CANCELED run and has no request timeout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kfp_server_api import V2beta1Pipeline

from hello_kubeflow.errors import KfpError, RunFailedError
from hello_kubeflow.kfp._kfp_private import pipeline_service
from hello_kubeflow.kfp.remote import KfpSession, call_api

log = logging.getLogger(__name__)

FINISHED = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})


@dataclass(frozen=True)
class PipelineRef:
    """The pipeline version a run is created from."""

    pipeline_id: str
    version_id: str
    version_name: str
    uploaded: bool


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: its final state and the state of each step."""

    state: str
    steps: dict[str, str]


# ---- pipelines and experiments


def upload_pipeline(session: KfpSession, package: Path, name: str) -> PipelineRef:
    """Upload `package` as version `<name>-<sha256 prefix>` of pipeline `name`, or reuse it.

    A new pipeline is created without a version (`kfp.Client.upload_pipeline` would
    name its first version after the pipeline, so the same package could not be found).

    Raises:
        KfpError: the API refused or failed the upload.
    """
    client = session.client
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    version_name = f"{name}-{digest}"
    pipeline_id = _find_one(
        session,
        f"looking up pipeline {name}",
        lambda f: client.list_pipelines(filter=f, namespace=session.namespace).pipelines,
        name,
    )
    if pipeline_id is None:
        pipeline_id = _create_pipeline(session, name)
    else:
        existing = _find_one(
            session,
            f"looking up version {version_name}",
            lambda f: client.list_pipeline_versions(pipeline_id, filter=f).pipeline_versions,
            version_name,
            id_field="pipeline_version_id",
        )
        if existing is not None:
            log.info("pipeline %s already has this version (%s): reusing it", name, version_name)
            return PipelineRef(pipeline_id, existing, version_name, False)
    version = call_api(
        session,
        f"uploading version {version_name} of pipeline {name}",
        lambda: client.upload_pipeline_version(str(package), version_name, pipeline_id=pipeline_id),
        idempotent=False,
    )
    log.info("uploaded pipeline %s as version %s", name, version_name)
    return PipelineRef(pipeline_id, version.pipeline_version_id, version_name, True)


def _create_pipeline(session: KfpSession, name: str) -> str:
    """Create pipeline `name` with no version yet (POST /apis/v2beta1/pipelines); its ID."""
    body = V2beta1Pipeline(display_name=name, namespace=session.namespace)
    service = pipeline_service(session.client)
    created = call_api(
        session,
        f"creating pipeline {name}",
        lambda: service.pipeline_service_create_pipeline(body),
        idempotent=False,
    )
    log.info("created pipeline %s", name)
    return str(created.pipeline_id)


def ensure_experiment(session: KfpSession, name: str) -> str:
    """The ID of experiment `name`, created when it does not exist yet (KfpError if refused)."""
    experiment = call_api(
        session,
        f"finding or creating experiment {name}",
        lambda: session.client.create_experiment(name, namespace=session.namespace),
        idempotent=False,
    )
    return str(experiment.experiment_id)


def start_run(
    session: KfpSession,
    *,
    experiment_id: str,
    pipeline: PipelineRef,
    run_name: str,
    parameters: dict[str, Any],
) -> str:
    """Create a run of `pipeline` with `parameters`; its ID (KfpError if refused)."""
    run = call_api(
        session,
        f"creating run {run_name}",
        lambda: session.client.run_pipeline(
            experiment_id=experiment_id,
            job_name=run_name,
            params=parameters,
            pipeline_id=pipeline.pipeline_id,
            version_id=pipeline.version_id,
        ),
        idempotent=False,
    )
    return str(run.run_id)


# ---- following a run


@dataclass(frozen=True)
class FailedStep:
    """A failed step: display name, task key, and its `executor` pod's Argo node ID.

    The backend gives the node ID as the step's child task (`child_tasks[].pod_name`).
    """

    display_name: str
    task_key: str
    node_id: str


def step_names(package: Path) -> dict[str, str]:
    """The compiled package's steps: task key (`train`) -> display name ("train model").

    From `root.dag.tasks.<key>.taskInfo.name` of the pipeline spec (kubeflow/pipelines
    2.17.0, api/v2alpha1/pipeline_spec.proto).

    Raises:
        KfpError: the package is not a compiled KFP v2 pipeline.
    """
    try:
        spec = next(iter(yaml.safe_load_all(package.read_text())), None) or {}
        tasks = spec["root"]["dag"]["tasks"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise KfpError(
            f"{package} is not a compiled Kubeflow Pipelines v2 package ({type(exc).__name__}): "
            "compile it again (`inv train --mode cluster --dry-run` shows where it goes)"
        ) from None
    return {
        str(key): str((task.get("taskInfo") or {}).get("name") or key)
        for key, task in tasks.items()
    }


def follow_run(
    session: KfpSession,
    run_id: str,
    *,
    timeout: float,
    steps: dict[str, str],
    on_step: Callable[[str, str], None] | None = None,
    explain_failure: Callable[[FailedStep], str] | None = None,
    never_starts: Callable[[float], str] | None = None,
) -> RunOutcome:
    """Poll the run until it finishes, reporting each step's state as it changes.

    Args:
        session, run_id: the connection and the run to follow.
        timeout: seconds before giving up (the run goes on in the cluster).
        steps: the pipeline's steps, task key -> display name (`step_names`).
        on_step: called with (display name, new state) on every change.
        explain_failure: what to add for a failed step (its pod's reason, log tail), or "".
        never_starts: called with `time.monotonic()` at each poll; why the run can never
            finish (a step pod that cannot pull its image, or fits on no node), or "".

    Raises:
        RunFailedError: the run failed, was canceled or skipped (naming the failing
            step), or did not finish within `timeout`.
        KfpError: the API kept failing or refused us.
    """
    deadline = time.monotonic() + timeout
    url = session.run_url(run_id)
    state = ""
    seen: dict[str, str] = {}
    while True:
        run = call_api(session, f"reading run {run_id}", lambda: session.client.get_run(run_id))
        new_state = str(run.state or "PENDING")
        if new_state != state:
            log.info("run %s: %s", run_id, new_state)
            state = new_state
        seen = _report_steps(_steps(run, steps), seen, on_step)
        if state in FINISHED:
            break
        now = time.monotonic()
        stuck = never_starts(now) if never_starts is not None else ""
        if stuck:
            raise RunFailedError(
                f"run {run_id} cannot finish: {stuck}. The run stays in the cluster until you "
                f"cancel it (in the UI: {url})"
            )
        if now >= deadline:
            raise _too_late(run_id, timeout, state, seen, url)
        time.sleep(min(session.patience.poll_interval, deadline - now))
    if state != "SUCCEEDED":
        failed = _failed_step(run, steps) if state == "FAILED" else None
        detail = explain_failure(failed) if failed and explain_failure else ""
        raise RunFailedError(_failure_message(run, run_id, state, seen, url, failed, detail))
    return RunOutcome(state=state, steps=seen)


def _report_steps(
    now_steps: dict[str, str],
    seen: dict[str, str],
    on_step: Callable[[str, str], None] | None,
) -> dict[str, str]:
    """Log (and pass to `on_step`) each step whose state changed since `seen`."""
    for name, step_state in now_steps.items():
        if seen.get(name) != step_state:
            log.info("  step %s: %s", name, step_state)
            if on_step is not None:
                on_step(name, step_state)
    return now_steps


def _too_late(
    run_id: str, timeout: float, state: str, seen: dict[str, str], url: str
) -> RunFailedError:
    """The error for a run that did not finish in time, naming the steps not done."""
    running = [n for n, s in seen.items() if s not in FINISHED] or ["(none started)"]
    return RunFailedError(
        f"run {run_id} did not finish within {timeout:.0f} s (state {state}; "
        f"step {', '.join(running)} not done). It goes on in the cluster: follow it at "
        f"{url}, raise HK_RUN_TIMEOUT, or cancel it in the UI"
    )


def _tasks(run: Any) -> list[Any]:
    return list(getattr(getattr(run, "run_details", None), "task_details", None) or [])


def _steps(run: Any, steps: dict[str, str]) -> dict[str, str]:
    """Each step's state by display name: its DAG node's, the task named by its key.

    The backend reports every Argo node as a task: the workflow, `root-driver`, `root`,
    `<key>-driver`, the step's DAG and its `executor` pod (kubeflow/pipelines 2.17.0,
    backend/src/apiserver/server/api_converter.go `toModelTasks`).
    """
    by_key = {str(t.display_name): str(t.state or "PENDING") for t in _tasks(run)}
    return {name: by_key[key] for key, name in steps.items() if key in by_key}


def _failed_step(run: Any, steps: dict[str, str]) -> FailedStep | None:
    """The first step whose DAG node FAILED (Argo's Failed and Error both: kubeflow/pipelines
    2.17.0, backend/src/apiserver/model/run.go `RuntimeState.ToV2`), with its executor's node.
    """
    tasks = {str(t.display_name): t for t in _tasks(run)}
    for key, name in steps.items():
        task = tasks.get(key)
        if task is None or str(task.state) != "FAILED":
            continue
        children = [getattr(c, "pod_name", None) or "" for c in task.child_tasks or []]
        return FailedStep(name, key, next((c for c in children if c), ""))
    return None


def _failure_message(
    run: Any,
    run_id: str,
    state: str,
    steps: dict[str, str],
    url: str,
    failed: FailedStep | None,
    detail: str,
) -> str:
    error = getattr(run, "error", None)
    cause = str(getattr(error, "message", None) or "")
    if failed is not None:
        said = f"run {run_id} {state} at step '{failed.display_name}'"
        if cause:  # the run's own error is usually empty; tasks never carry one
            said += f": {cause}"
        if detail:
            return f"{said}. {detail}\nThe run: {url}"
        return f"{said}. Its logs are in the run's page: {url}"
    if state == "CANCELED":
        # Argo marks the nodes a stop ends as Failed, which the backend reports as FAILED.
        stopped = [n for n, s in steps.items() if s not in ("SUCCEEDED", "SKIPPED", "PENDING")]
        where = f" during step '{stopped[0]}'" if stopped else ""
        return f"run {run_id} was CANCELED{where}. Start it again with `inv train --mode cluster`"
    return f"run {run_id} ended {state}{': ' + cause if cause else ''}. Details: {url}"


def _find_one(
    session: KfpSession,
    what: str,
    lister: Callable[[str], Any],
    name: str,
    *,
    id_field: str = "pipeline_id",
) -> str | None:
    condition = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )
    found = call_api(session, what, lambda: lister(condition)) or []
    matches = [item for item in found if item.display_name == name]
    return str(getattr(matches[0], id_field)) if matches else None
