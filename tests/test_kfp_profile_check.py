"""A multi-user profile namespace checked for what runs need, against the emulated API server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import ApiServer
from emulators import RunningCluster, settings_api

from hello_kubeflow.errors import PrerequisiteError
from hello_kubeflow.kfp.profile_check import check_profile_namespace

PROFILE = "kubeflow-user-example-com"


def profile_namespace(name: str = PROFILE, *, pipelines: bool = True) -> dict[str, Any]:
    """The Namespace the Kubeflow profile controller makes for Profile `name`.

    kubeflow/kubeflow v1.10.0, components/profile-controller/controllers/
    profile_controller.go: annotation `owner`, label `istio-injection`, then
    the labels of `namespace-labels.yaml` (kubeflow/manifests 26.03, ConfigMap
    `namespace-labels-data`), owned by the Profile.
    """
    labels = {
        "istio-injection": "enabled",
        "katib.kubeflow.org/metrics-collector-injection": "enabled",
        "serving.kubeflow.org/inferenceservice": "enabled",
        "app.kubernetes.io/part-of": "kubeflow-profile",
        "pod-security.kubernetes.io/enforce": "baseline",
    }
    if pipelines:
        labels["pipelines.kubeflow.org/enabled"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"owner": "user@example.com"},
            "ownerReferences": [
                {
                    "apiVersion": "kubeflow.org/v1",
                    "kind": "Profile",
                    "name": name,
                    "uid": "0b0e5f7c-1d1e-4a53-9d2f-6a7e7c1f0001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "status": {"phase": "Active"},
    }


def default_editor(namespace: str = PROFILE) -> dict[str, Any]:
    """The service account the profile controller makes (`updateServiceAccount`)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default-editor", "namespace": namespace},
    }


def artifact_secret(namespace: str = PROFILE) -> dict[str, Any]:
    """The Secret KFP's profile controller writes (kubeflow/pipelines 2.17.0,
    manifests/kustomize/base/installs/multi-user/pipelines-profile-controller/sync.py)."""
    key = base64.b64encode(b"not-a-real-key").decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mlpipeline-minio-artifact", "namespace": namespace},
        "data": {"accesskey": key, "secretkey": key},
    }


@pytest.fixture
def cluster() -> Iterator[RunningCluster]:
    with RunningCluster(ApiServer()) as emulator:
        yield emulator


def ready(
    cluster: RunningCluster, *, pipelines: bool = True, account: bool = True, secret: bool = True
) -> None:
    """The profile namespace, with what the two controllers have made so far."""
    cluster.put_object("v1/namespaces", None, PROFILE, profile_namespace(pipelines=pipelines))
    if account:
        cluster.put_object("v1/serviceaccounts", PROFILE, "default-editor", default_editor())
    if secret:
        cluster.put_object("v1/secrets", PROFILE, "mlpipeline-minio-artifact", artifact_secret())


def check(cluster: RunningCluster, tmp_path: Path, namespace: str = PROFILE) -> None:
    settings = cluster.settings(tmp_path)
    check_profile_namespace(settings_api(settings), namespace)


def test_a_ready_profile_namespace_passes(cluster: RunningCluster, tmp_path: Path) -> None:
    ready(cluster)

    check(cluster, tmp_path)


def test_a_missing_namespace_says_which_profile_to_create(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    with pytest.raises(PrerequisiteError) as raised:
        check(cluster, tmp_path, "kubeflow-user-nobody")

    message = str(raised.value)
    assert "profile namespace kubeflow-user-nobody (HK_NAMESPACE) does not exist" in message
    assert "create the Profile kubeflow-user-nobody" in message
    assert "kubectl get profiles" in message


def test_a_namespace_kfp_does_not_set_up_is_refused(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    ready(cluster, pipelines=False)

    with pytest.raises(PrerequisiteError, match=r"lacks the label pipelines.kubeflow.org/enabled"):
        check(cluster, tmp_path)


def test_no_default_editor_yet_says_to_wait_for_the_profile_controller(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    ready(cluster, account=False)

    with pytest.raises(PrerequisiteError) as raised:
        check(cluster, tmp_path)

    message = str(raised.value)
    assert f"{PROFILE} has no service account default-editor" in message
    assert "Wait for it" in message and f"kubectl get profile {PROFILE}" in message


def test_no_artifact_secret_yet_names_it_and_kfps_profile_controller(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    ready(cluster, secret=False)

    with pytest.raises(PrerequisiteError) as raised:
        check(cluster, tmp_path)

    message = str(raised.value)
    assert f"{PROFILE} has no Secret mlpipeline-minio-artifact" in message
    assert "kubectl logs -n kubeflow deploy/kubeflow-pipelines-profile-controller" in message


def test_a_user_who_may_not_read_service_accounts_is_not_stopped(
    cluster: RunningCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 is not a missing profile: that read is skipped (logged), the rest still checked."""
    ready(cluster, account=False)  # would be refused, were service accounts readable
    cluster.fail(
        lambda r: (
            r.resource is not None
            and r.resource.plural == "serviceaccounts"
            and r.name == "default-editor"
        ),
        5,
        403,
    )

    check(cluster, tmp_path)

    assert "cannot check the profile namespace: HTTP 403" in caplog.text
