"""Is the profile namespace ready for runs? Checked before uploading on a multi-user install.

A run started too early is stuck or fails (kubeflow/pipelines#12480). The Kubeflow profile
controller makes the namespace from a Profile, labels it `pipelines.kubeflow.org/enabled: "true"`
and makes the service account `default-editor` runs execute as (kubeflow/kubeflow v1.10.0,
components/profile-controller/controllers/profile_controller.go `DEFAULT_EDITOR`; manifests
26.03 `pipeline-install-config` DEFAULTPIPELINERUNNERSERVICEACCOUNT). KFP's profile controller
then writes the artifact store's keys there as Secret `mlpipeline-minio-artifact`
(kubeflow/pipelines 2.17.0, manifests/kustomize/base/installs/multi-user/
pipelines-profile-controller/sync.py and decorator-controller.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hello_kubeflow.errors import PrerequisiteError
from hello_kubeflow.kube.client import describe_api_error

log = logging.getLogger(__name__)

PIPELINES_LABEL = "pipelines.kubeflow.org/enabled"
RUNNER_ACCOUNT = "default-editor"
ARTIFACT_SECRET = "mlpipeline-minio-artifact"
KFP_PROFILE_CONTROLLER = "kubeflow-pipelines-profile-controller"


_ABSENT = object()  # what `_read` answers for a 404


def check_profile_namespace(api: client.ApiClient, namespace: str) -> None:
    """Check that `namespace` (HK_NAMESPACE) is a profile namespace ready for KFP runs.

    What the user's kubeconfig may not read is skipped (logged): a Kubeflow user need
    not be allowed to read namespaces.

    Raises:
        PrerequisiteError: the namespace is missing, not a pipelines profile namespace, or
            lacks `default-editor` or the artifact-store Secret (saying what to do).
    """
    core = client.CoreV1Api(api)
    watch_it = (
        f"`kubectl get profile {namespace} -o yaml` shows the profile's conditions; "
        "the controller's log: `kubectl logs -n kubeflow deploy/profiles-deployment`"
    )
    space = _read(lambda: core.read_namespace(namespace))
    if space is _ABSENT:
        raise PrerequisiteError(
            f"the profile namespace {namespace} (HK_NAMESPACE) does not exist. On multi-user "
            f"Kubeflow a run goes to a profile's namespace: create the Profile {namespace} "
            "(apiVersion kubeflow.org/v1, kind Profile, spec.owner {kind: User, name: <your "
            "email>}) or register in the dashboard, then wait until `kubectl get namespace "
            f"{namespace}` shows it; or set HK_NAMESPACE to your profile "
            "(`kubectl get profiles` lists them)"
        )
    labels = dict(getattr(getattr(space, "metadata", None), "labels", None) or {})
    if space is not None and labels.get(PIPELINES_LABEL) != "true":
        raise PrerequisiteError(
            f"namespace {namespace} (HK_NAMESPACE) lacks the label {PIPELINES_LABEL}=true, so "
            "Kubeflow Pipelines never sets it up for runs: it is not a profile's namespace, or "
            f"the profile controller has not labelled it yet. Use your profile's namespace, "
            f"or wait: {watch_it}"
        )
    if _read(lambda: core.read_namespaced_service_account(RUNNER_ACCOUNT, namespace)) is _ABSENT:
        raise PrerequisiteError(
            f"the profile namespace {namespace} has no service account {RUNNER_ACCOUNT}, which "
            "runs execute as: the Kubeflow profile controller makes it for the Profile "
            f"{namespace}. Wait for it (`kubectl get serviceaccount -n {namespace} "
            f"{RUNNER_ACCOUNT}`); if it does not come, {watch_it}"
        )
    if _read(lambda: core.read_namespaced_secret(ARTIFACT_SECRET, namespace)) is _ABSENT:
        raise PrerequisiteError(
            f"the profile namespace {namespace} has no Secret {ARTIFACT_SECRET}, the artifact "
            "store's keys that every step needs: Kubeflow Pipelines' profile controller writes "
            f"it when it syncs the namespace. Wait for it (`kubectl get secret -n {namespace} "
            f"{ARTIFACT_SECRET}`); if it does not come, read the controller's log: "
            f"`kubectl logs -n kubeflow deploy/{KFP_PROFILE_CONTROLLER}`"
        )


def _read(request: Callable[[], Any]) -> Any:
    """The object; `_ABSENT` when not found; None when not allowed or unreachable (skipped)."""
    try:
        return request()
    except Exception as exc:  # unreachable or refused: the KFP API will say what is wrong
        if isinstance(exc, ApiException) and int(exc.status or 0) == 404:
            return _ABSENT
        log.warning("cannot check the profile namespace: %s", describe_api_error(exc))
        return None
