"""The apply retry loop, with a stand-in kubectl on PATH that fails as a real one does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from kube_support import StandInKubectl

from hello_kubeflow.errors import ApplyError, PrerequisiteError
from hello_kubeflow.kube.kubectl import ApplyBackoff, Kubectl, apply_source, is_transient_failure
from hello_kubeflow.settings import Settings

FAST = ApplyBackoff(initial=0.01, maximum=0.05)
SOURCE = "github.com/kubeflow/pipelines/manifests/kustomize/env/dev?ref=2.14.3"
WEBHOOK_DOWN = (
    'Error from server (InternalError): error when creating "STDIN": Internal error occurred: '
    'failed calling webhook "v1.vseldondeployment.kb.io": failed to call webhook: Post '
    '"https://seldon-webhook-service.seldon-system.svc:443/validate": dial tcp 10.96.0.12:443: '
    "connect: connection refused"
)
INVALID = (
    'The Deployment "ml-pipeline" is invalid: spec.template.spec.containers[0].image: '
    "Required value"
)


@pytest.fixture
def kubectl_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInKubectl:
    return StandInKubectl(tmp_path, monkeypatch)


@pytest.fixture
def kubectl() -> Kubectl:
    return Kubectl.from_settings(Settings(kube_context="kind-hello"))


def test_a_webhook_not_serving_yet_is_retried_until_apply_succeeds(
    kubectl_on_path: StandInKubectl, kubectl: Kubectl, caplog: pytest.LogCaptureFixture
) -> None:
    kubectl_on_path.behave(apply_failures=3, stderr=WEBHOOK_DOWN)
    caplog.set_level(logging.INFO, logger="hello_kubeflow")

    applied = apply_source(kubectl, SOURCE, "Kubeflow Pipelines", deadline=30, backoff=FAST)

    assert applied == 2
    assert len(kubectl_on_path.applies()) == 4
    assert kubectl_on_path.builds() == [SOURCE]  # built once, applied until it took
    assert caplog.text.count("failed calling webhook") == 3


def test_apply_is_server_side_on_the_chosen_context_with_the_built_manifests(
    kubectl_on_path: StandInKubectl, kubectl: Kubectl
) -> None:
    apply_source(kubectl, SOURCE, "Kubeflow Pipelines", backoff=FAST)

    (args,) = kubectl_on_path.applies()
    assert args[:2] == ["--context=kind-hello", "apply"]
    assert {"--server-side", "--force-conflicts", "--field-manager=hello-kubeflow"} <= set(args)
    assert args[-2:] == ["-f", "-"]


def test_a_permanent_error_is_reported_at_once_with_kubectls_message(
    kubectl_on_path: StandInKubectl, kubectl: Kubectl
) -> None:
    kubectl_on_path.behave(apply_failures=1, stderr=INVALID)

    with pytest.raises(ApplyError) as failed:
        apply_source(kubectl, SOURCE, "Kubeflow Pipelines", deadline=30, backoff=FAST)

    assert INVALID in str(failed.value)
    assert len(kubectl_on_path.applies()) == 1


def test_a_transient_error_that_lasts_past_the_deadline_is_reported_with_its_message(
    kubectl_on_path: StandInKubectl, kubectl: Kubectl
) -> None:
    kubectl_on_path.behave(apply_failures=10_000, stderr=WEBHOOK_DOWN)

    with pytest.raises(ApplyError, match=r"still failed after \d+ attempts") as failed:
        apply_source(kubectl, SOURCE, "Seldon Core", deadline=0.5, backoff=FAST)

    assert WEBHOOK_DOWN in str(failed.value)


def test_a_directory_of_yaml_is_applied_recursively_without_building(
    kubectl_on_path: StandInKubectl, kubectl: Kubectl, tmp_path: Path
) -> None:
    apply_source(kubectl, f"files:{tmp_path}", "RBAC", backoff=FAST)

    assert kubectl_on_path.builds() == []
    assert kubectl_on_path.applies()[0][-3:] == ["-f", str(tmp_path), "--recursive"]


def test_a_missing_kubectl_is_a_prerequisite_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubectl: Kubectl
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(PrerequisiteError, match=r"kubectl.*not installed"):
        apply_source(kubectl, SOURCE, "Kubeflow Pipelines", backoff=FAST)


@pytest.mark.parametrize(
    "message",
    [
        'error: resource mapping not found for name: "pipeline" namespace: "kubeflow" from '
        '"STDIN": no matches for kind "Application" in version "app.k8s.io/v1beta1"\n'
        "ensure CRDs are installed first",
        WEBHOOK_DOWN,
        'Error from server: error when creating "STDIN": etcdserver: request timed out',
        "Error from server (TooManyRequests): the server has received too many requests",
        "Error from server (ServiceUnavailable): the server is currently unable to handle the "
        "request",
    ],
    ids=["crd-not-established", "webhook-refused", "etcd-timeout", "429", "503"],
)
def test_known_transient_failures_are_retried(message: str) -> None:
    assert is_transient_failure(message)


@pytest.mark.parametrize(
    "message",
    [
        INVALID,
        'Error from server (Forbidden): deployments.apps "x" is forbidden: User "me" cannot patch',
        'error: error validating "STDIN": unknown field "spec.foo"\n' + WEBHOOK_DOWN,
    ],
    ids=["invalid", "forbidden", "one-permanent-among-transient"],
)
def test_other_failures_are_not_retried(message: str) -> None:
    assert not is_transient_failure(message)
