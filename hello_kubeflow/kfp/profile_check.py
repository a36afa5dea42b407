"""Is the profile namespace ready for runs? Checked before uploading on a multi-user install.

On multi-user Kubeflow a run goes to the user's profile namespace and needs
what two controllers put there; a run started before they have is stuck or
fails (kubeflow/pipelines#12480):

- the Kubeflow profile controller makes the namespace from a Profile of the
  same name, labels it from its `namespace-labels.yaml` (among them
  `pipelines.kubeflow.org/enabled: "true"`), and makes the service account
  `default-editor` that runs execute as (kubeflow/kubeflow v1.10.0, the
  version kubeflow/manifests 26.03 deploys,
  components/profile-controller/controllers/profile_controller.go
  `DEFAULT_EDITOR`; manifests 26.03 `pipeline-install-config`
  DEFAULTPIPELINERUNNERSERVICEACCOUNT: default-editor);
- Kubeflow Pipelines' profile controller, a metacontroller decorator over
  namespaces labelled `pipelines.kubeflow.org/enabled: "true"`, writes the
  artifact store's keys there as the Secret `mlpipeline-minio-artifact`
  (kubeflow/pipelines 2.17.0,
  manifests/kustomize/base/installs/multi-user/pipelines-profile-controller/
  sync.py and decorator-controller.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Look:
    """One read: found, absent, or not allowed / not reachable (then the check is skipped)."""

    found: Any
    absent: bool


def check_profile_namespace(api: client.ApiClient, namespace: str) -> None:
    """Check that `namespace` is a profile namespace ready for Kubeflow Pipelines runs.

    What the user's kubeconfig may not read is skipped (logged): a Kubeflow
    user need not be allowed to read namespaces.

    Args:
        api: a Kubernetes API client (the user's kubeconfig; `kube.client.api_client`
            bounds each call by HK_KUBE_REQUEST_TIMEOUT).
        namespace: the profile namespace the run goes to (HK_NAMESPACE).

    Raises:
        PrerequisiteError: the namespace is missing, not a pipelines profile
            namespace, or lacks `default-editor` or the artifact-store Secret;
            the message says which profile to create or what to wait for.
    """
    core = client.CoreV1Api(api)
    watch_it = (
        f"`kubectl get profile {namespace} -o yaml` shows the profile's conditions; "
        "the controller's log: `kubectl logs -n kubeflow deploy/profiles-deployment`"
    )
    space = _read(lambda: core.read_namespace(namespace))
    if space.absent:
        raise PrerequisiteError(
            f"the profile namespace {namespace} (HK_NAMESPACE) does not exist. On multi-user "
            f"Kubeflow a run goes to a profile's namespace: create the Profile {namespace} "
            "(apiVersion kubeflow.org/v1, kind Profile, spec.owner {kind: User, name: <your "
            "email>}) or register in the dashboard, then wait until `kubectl get namespace "
            f"{namespace}` shows it; or set HK_NAMESPACE to your profile "
            "(`kubectl get profiles` lists them)"
        )
    labels = dict(getattr(getattr(space.found, "metadata", None), "labels", None) or {})
    if space.found is not None and labels.get(PIPELINES_LABEL) != "true":
        raise PrerequisiteError(
            f"namespace {namespace} (HK_NAMESPACE) lacks the label {PIPELINES_LABEL}=true, so "
            "Kubeflow Pipelines never sets it up for runs: it is not a profile's namespace, or "
            f"the profile controller has not labelled it yet. Use your profile's namespace, "
            f"or wait: {watch_it}"
        )
    account = _read(lambda: core.read_namespaced_service_account(RUNNER_ACCOUNT, namespace))
    if account.absent:
        raise PrerequisiteError(
            f"the profile namespace {namespace} has no service account {RUNNER_ACCOUNT}, which "
            "runs execute as: the Kubeflow profile controller makes it for the Profile "
            f"{namespace}. Wait for it (`kubectl get serviceaccount -n {namespace} "
            f"{RUNNER_ACCOUNT}`); if it does not come, {watch_it}"
        )
    secret = _read(lambda: core.read_namespaced_secret(ARTIFACT_SECRET, namespace))
    if secret.absent:
        raise PrerequisiteError(
            f"the profile namespace {namespace} has no Secret {ARTIFACT_SECRET}, the artifact "
            "store's keys that every step needs: Kubeflow Pipelines' profile controller writes "
            f"it when it syncs the namespace. Wait for it (`kubectl get secret -n {namespace} "
            f"{ARTIFACT_SECRET}`); if it does not come, read the controller's log: "
            f"`kubectl logs -n kubeflow deploy/{KFP_PROFILE_CONTROLLER}`"
        )


def _read(request: Callable[[], Any]) -> _Look:
    try:
        answer = request()
    except Exception as exc:  # unreachable or refused: the KFP API will say what is wrong
        if isinstance(exc, ApiException) and int(exc.status or 0) == 404:
            return _Look(None, True)
        log.warning("cannot check the profile namespace: %s", describe_api_error(exc))
        return _Look(None, False)
    return _Look(answer, False)
