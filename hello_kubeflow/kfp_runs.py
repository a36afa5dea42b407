"""Pipelines, experiments and runs on Kubeflow Pipelines: upload, start, follow.

The SDK's own `wait_for_run_completion` never returns for a CANCELED run and
has no request timeout: `follow_run` is our own loop, with a deadline, that
reports each step's state as it changes and names the failing step.
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

from hello_kubeflow.errors import KfpError, RunFailedError
from hello_kubeflow.kfp_remote import KfpSession, call_api

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

    run_id: str
    state: str
    steps: dict[str, str]
    seconds: float


# ---- pipelines and experiments


def upload_pipeline(session: KfpSession, package: Path, name: str) -> PipelineRef:
    """Upload `package` as pipeline `name`, or as a new version when the name exists.

    A version is named after the package's content, so uploading the same
    package twice reuses the version instead of piling up copies.

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
        pipeline = call_api(
            session,
            f"uploading pipeline {name}",
            lambda: client.upload_pipeline(
                str(package), pipeline_name=name, namespace=session.namespace
            ),
            idempotent=False,
        )
        versions = call_api(
            session,
            f"listing the versions of pipeline {name}",
            lambda: (
                client.list_pipeline_versions(
                    pipeline.pipeline_id, sort_by="created_at desc", page_size=1
                ).pipeline_versions
            ),
        )
        if not versions:
            raise KfpError(f"pipeline {name} was uploaded but has no version: upload it again")
        log.info("uploaded new pipeline %s", name)
        first = versions[0]
        return PipelineRef(
            pipeline.pipeline_id, first.pipeline_version_id, first.display_name, True
        )
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
    log.info("uploaded pipeline %s as new version %s", name, version_name)
    return PipelineRef(pipeline_id, version.pipeline_version_id, version_name, True)


def ensure_experiment(session: KfpSession, name: str) -> str:
    """The ID of experiment `name`, created when it does not exist yet.

    Raises:
        KfpError: the API refused or failed.
    """
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
    """Create a run of `pipeline` with `parameters`; return its ID.

    Raises:
        KfpError: the API refused (e.g. an unknown parameter) or failed.
    """
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


def follow_run(
    session: KfpSession,
    run_id: str,
    *,
    timeout: float,
    on_step: Callable[[str, str], None] | None = None,
) -> RunOutcome:
    """Poll the run until it finishes, reporting each step's state as it changes.

    Args:
        session: the connection.
        run_id: the run to follow.
        timeout: seconds before giving up (the run goes on in the cluster).
        on_step: called with (step name, new state) on every change.

    Returns:
        The outcome of a run that SUCCEEDED.

    Raises:
        RunFailedError: the run failed, was canceled or skipped (naming the
            failing step), or did not finish within `timeout`.
        KfpError: the API kept failing or refused us.
    """
    started = time.monotonic()
    deadline = started + timeout
    url = session.run_url(run_id)
    state = ""
    steps: dict[str, str] = {}
    while True:
        run = call_api(session, f"reading run {run_id}", lambda: session.client.get_run(run_id))
        new_state = str(run.state or "PENDING")
        if new_state != state:
            log.info("run %s: %s", run_id, new_state)
            state = new_state
        new_steps = _steps(run)
        for name, step_state in new_steps.items():
            if steps.get(name) != step_state:
                log.info("  step %s: %s", name, step_state)
                if on_step is not None:
                    on_step(name, step_state)
        steps = new_steps
        if state in FINISHED:
            break
        now = time.monotonic()
        if now >= deadline:
            running = [n for n, s in steps.items() if s not in FINISHED] or ["(none started)"]
            raise RunFailedError(
                f"run {run_id} did not finish within {timeout:.0f} s (state {state}; "
                f"step {', '.join(running)} not done). It goes on in the cluster: follow it at "
                f"{url}, raise HK_RUN_TIMEOUT, or cancel it in the UI"
            )
        time.sleep(min(session.patience.poll_interval, deadline - now))
    seconds = round(time.monotonic() - started, 2)
    if state != "SUCCEEDED":
        raise RunFailedError(_failure_message(run, run_id, state, steps, url))
    return RunOutcome(run_id=run_id, state=state, steps=steps, seconds=seconds)


def _steps(run: Any) -> dict[str, str]:
    """Each step's state by display name, leaving out the DAGs that group them."""
    details = getattr(run, "run_details", None)
    tasks = getattr(details, "task_details", None) or []
    skip = {run.display_name, "root"}
    steps: dict[str, str] = {}
    for task in tasks:
        name = task.display_name or task.task_id
        if task.child_tasks or name in skip:
            continue
        steps[name] = str(task.state or "PENDING")
    return steps


def _failure_message(run: Any, run_id: str, state: str, steps: dict[str, str], url: str) -> str:
    tasks = getattr(getattr(run, "run_details", None), "task_details", None) or []
    failed = [t for t in tasks if str(t.state) == "FAILED" and not t.child_tasks]
    error = getattr(run, "error", None)
    cause = getattr(error, "message", None) or ""
    if failed:
        step = failed[0].display_name or failed[0].task_id
        cause = getattr(failed[0].error, "message", None) or cause or "see the step's logs"
        return f"run {run_id} {state} at step '{step}': {cause}. Logs: {url}"
    if state == "CANCELED":
        stopped = [n for n, s in steps.items() if s in ("CANCELED", "RUNNING", "CANCELING")]
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
