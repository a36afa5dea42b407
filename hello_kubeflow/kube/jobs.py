"""What became of a Job whose pod failed: succeeded since, retrying, failed for good, gone."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hello_kubeflow.kube.client import describe_api_error, is_transient

JOB_RECHECK = 5.0  # seconds before the status of a Job is asked again

JobLookup = Callable[[str, str], tuple[str, str]]
"""(namespace, job) -> (outcome, message); outcome: succeeded, failed, running or gone."""


def job_lookup(api: client.ApiClient) -> JobLookup:
    """A `JobLookup` that asks the API (`api_client`), at most once per Job every JOB_RECHECK s."""
    batch = client.BatchV1Api(api)
    cache: dict[tuple[str, str], tuple[float, tuple[str, str]]] = {}

    def lookup(namespace: str, name: str) -> tuple[str, str]:
        now = time.monotonic()
        cached = cache.get((namespace, name))
        if cached and now - cached[0] < JOB_RECHECK:
            return cached[1]
        cache[(namespace, name)] = (now, _job_outcome(batch, namespace, name))
        return cache[(namespace, name)][1]

    return lookup


def _job_outcome(batch: client.BatchV1Api, namespace: str, name: str) -> tuple[str, str]:
    try:
        response = batch.read_namespaced_job_status(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return ("gone", "")
        return ("running", f"job status unknown: {describe_api_error(exc)}")
    except Exception as exc:
        if is_transient(exc):
            return ("running", f"job status unknown: {describe_api_error(exc)}")
        raise
    status = json.loads(response.data).get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in (
            "Complete",
            "SuccessCriteriaMet",
        ):
            return ("succeeded", "")
        if condition.get("status") == "True" and condition.get("type") == "Failed":
            return (
                "failed",
                f"job {name}: {condition.get('reason', '')} {condition.get('message', '')}".strip(),
            )
    if int(status.get("succeeded") or 0) > 0:
        return ("succeeded", "")
    return ("running", "")
