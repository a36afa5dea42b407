"""The body of the pipeline's `deploy` step: serve the model the run just trained.

It runs in the cluster as the pipeline's service account (no kubeconfig), the only place
the model artifact's URI is known, and records what the run measured on the resource.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client

from hello_kubeflow.deploy.deploy import (
    DEPLOY_TIMEOUT,
    POLL_INTERVAL,
    copy_storage_credentials,
    deploy_model,
    detect_serving,
)
from hello_kubeflow.deploy.kserve_access import ensure_policy
from hello_kubeflow.deploy.model_manifests import ModelDeployment
from hello_kubeflow.kube.client import api_client
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)


def deploy_step(
    *,
    model_uri: str,
    image: str,
    namespace: str,
    name: str,
    serving: str = "auto",
    model_name: str = "mnist-classifier",
    run_id: str = "",
    pull_secret: str = "",
    model_metadata: Mapping[str, Any] | None = None,
    report_metadata: Mapping[str, Any] | None = None,
    timeout: float = DEPLOY_TIMEOUT,
    poll_interval: float = POLL_INTERVAL,
    request_timeout: float = Settings.kube_request_timeout,
    crash_grace: float = Settings.wait_crash_grace,
    api: client.ApiClient | None = None,
) -> dict[str, str]:
    """Deploy the model at `model_uri`, wait until it serves; return serving, namespace, name.

    Args:
        model_uri: the model artifact's URI (the object store path KFP wrote).
        image: the project image (by digest) whose model server runs it.
        namespace: where the model is served.
        name: the SeldonDeployment / InferenceService name.
        serving: `seldon`, `kserve`, or `auto` (whichever is installed).
        model_name: the model's name in the V2 protocol.
        run_id: the KFP run, recorded on the resource.
        pull_secret: the image pull secret the model's pods name ("": none).
        model_metadata: the model artifact's metadata (training parameters, sizes).
        report_metadata: the evaluation report's metadata (accuracy).
        timeout: seconds to wait for it to serve.
        poll_interval: seconds between looks at its status.
        request_timeout: seconds per API request (the starting machine's setting).
        crash_grace: seconds a model pod may crash-loop (the starting machine's setting).
        api: the API client (default: the pod's service account, in-cluster).

    Raises:
        DeploymentError: the model did not come to serve.
        PrerequisiteError: no serving system, or no permission to deploy (or, for
            KServe, to write its AuthorizationPolicy).
    """
    # In a pod: the service account's own credentials; no settings read from its environment.
    api = api or api_client(None, None, request_timeout)
    chosen = detect_serving(api, serving)
    if urlsplit(model_uri).scheme in ("minio", "s3"):  # KFP's object store: its keys
        copy_storage_credentials(api, namespace, chosen)
    if chosen == "kserve":  # beside the InferenceService, before its pods come up
        ensure_policy(api, namespace, name)
    deployment = ModelDeployment(
        name=name,
        namespace=namespace,
        serving=chosen,
        image=image,
        model_uri=model_uri,
        model_name=model_name,
        run_id=run_id,
        pull_secrets=(pull_secret,) if pull_secret else (),
        summary=run_summary(model_metadata or {}, report_metadata or {}),
    )
    deploy_model(
        api, deployment, timeout=timeout, poll_interval=poll_interval, crash_grace=crash_grace
    )
    return {"serving": chosen, "namespace": namespace, "name": name}


def run_summary(model: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """What a run measured, from its artifacts' metadata, as plain JSON values."""
    parameters = model.get("parameters") or {}
    trees = model.get("n_estimators")
    if trees is None and isinstance(parameters, Mapping):
        trees = parameters.get("n_estimators")
    summary: dict[str, Any] = {
        "accuracy": report.get("accuracy", model.get("accuracy")),
        "model": model.get("model"),
        "preset": model.get("preset"),
        "n_estimators": trees,
        "train_size": model.get("train_size"),
        "test_size": report.get("test_size", model.get("test_size")),
        "data_source": model.get("data_source"),
    }
    return {k: v for k, v in summary.items() if v is not None}
