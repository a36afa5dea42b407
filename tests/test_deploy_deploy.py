"""Deploying the served model against an emulated Kubernetes API over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from crd_schemas import upstream_file
from emulators import (
    KSERVE,
    POLICIES,
    SELDON,
    ClusterEmulator,
    Operator,
    kserve_failed_to_load,
    kserve_pod,
    kserve_ready,
    kserve_standard,
    seldon,
    serving,
    settings_api,
    write_kubeconfig,
)
from kube_support import waiting
from kubernetes import client
from rbac_support import (
    KUBEFLOW_EXAMPLE,
    Call,
    aggregated,
    calls_of,
    cluster_roles,
    kubeflow_roles,
    refused,
)

from hello_kubeflow.deploy.deploy import deploy_model, detect_serving, undeploy
from hello_kubeflow.deploy.deploy_step import deploy_step
from hello_kubeflow.deploy.model_manifests import (
    ROLLOUT_ANNOTATION,
    ModelDeployment,
    manifest,
    recorded_summary,
    rollout_of,
)
from hello_kubeflow.errors import DeploymentError, PrerequisiteError
from hello_kubeflow.settings import Settings

IMAGE = "localhost:5000/hello-kubeflow@sha256:" + "ab" * 32
MANIFESTS = Path(__file__).resolve().parents[1] / "hello_kubeflow/manifests"
RBAC = MANIFESTS / "pipeline-runner-rbac.yaml"
MODEL_URI = "minio://mlpipeline/v2/artifacts/hello-kubeflow-mnist/run-1/train/abc/model"
NEWER_URI = MODEL_URI.replace("run-1", "run-2")  # the same model path, of a later run
POLICY = "allow-mnist-classifier"  # the InferenceService's AuthorizationPolicy
needs_kubeflow = pytest.mark.skipif(
    not KUBEFLOW_EXAMPLE.is_file(),
    reason=f"Kubeflow 26.03's rendered manifests are not at {KUBEFLOW_EXAMPLE} "
    "(HK_TEST_UPSTREAM_DIR)",
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ClusterEmulator, client.ApiClient]]:
    """An emulated cluster with Seldon Core's resource type installed, and a client for it."""
    emulator = ClusterEmulator()
    emulator.declare(SELDON)
    with serving(emulator) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        yield emulator, settings_api(Settings(kubeconfig=kubeconfig))


def _deployment(serving_kind: str = "seldon", model_uri: str = MODEL_URI) -> ModelDeployment:
    return ModelDeployment(
        name="mnist-classifier",
        namespace="kubeflow",
        serving=serving_kind,
        image=IMAGE,
        model_uri=model_uri,
        run_id="run-1",
        summary={"accuracy": 0.97},
    )


def _containers(resource: dict[str, Any]) -> dict[str, Any]:
    spec = resource["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def test_seldon_is_routed_through_kubeflows_gateway() -> None:
    """Seldon's VirtualService binds the gateway its annotation names (ISTIO_ENABLED on)."""
    served = manifest(_deployment())

    assert served["metadata"]["annotations"]["seldon.io/istio-gateway"] == (
        "kubeflow/kubeflow-gateway"
    )


def test_seldon_deployment_is_applied_and_waited_until_available(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.controllers.append(Operator(SELDON, *seldon("Creating", "Creating", "Available")))

    served = deploy_model(api, _deployment(), poll_interval=0.01)

    assert served["status"]["state"] == "Available"
    stored = emulator.stored(SELDON, "kubeflow", "mnist-classifier")
    assert stored is not None
    containers = _containers(stored)
    assert containers["classifier"]["image"] == IMAGE
    assert stored["spec"]["protocol"] == "seldon"


def test_the_model_comes_from_the_object_store_through_seldons_storage_initializer(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    """`modelUri` + `envSecretRefName` on the graph node: Seldon's initializer fetches it."""
    emulator, api = cluster
    emulator.controllers.append(Operator(SELDON, *seldon("Available")))

    deploy_model(api, _deployment(), poll_interval=0.01)

    stored = emulator.stored(SELDON, "kubeflow", "mnist-classifier")
    assert stored is not None
    graph = stored["spec"]["predictors"][0]["graph"]
    assert (
        graph["modelUri"] == "s3:mlpipeline/v2/artifacts/hello-kubeflow-mnist/run-1/train/abc/model"
    )
    assert graph["envSecretRefName"] == "hello-kubeflow-seldon-storage"
    assert list(_containers(stored)) == ["classifier"]  # the operator adds the initializer
    server_env = {e["name"]: e.get("value") for e in _containers(stored)["classifier"]["env"]}
    assert server_env["HK_MODEL_DIR"] == "/mnt/models"


def test_a_second_deploy_updates_the_same_resource_in_place(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.controllers.append(Operator(SELDON, *seldon("Creating", "Available")))
    deploy_model(api, _deployment(), poll_interval=0.01)

    newer = NEWER_URI
    deploy_model(api, _deployment(model_uri=newer), poll_interval=0.01)

    assert len(emulator.live(SELDON)) == 1
    stored = emulator.stored(SELDON, "kubeflow", "mnist-classifier")
    assert stored is not None
    assert "run-2" in stored["spec"]["predictors"][0]["graph"]["modelUri"]
    assert recorded_summary(stored)["model_uri"] == newer


def _deployed_once(emulator: ClusterEmulator, api: client.ApiClient) -> Operator:
    """The model deployed once (Seldon says Available); the operator, to slow the next rollout."""
    operator = Operator(SELDON, *seldon("Available"))
    emulator.controllers.append(operator)
    deploy_model(api, _deployment(), poll_interval=0.01)
    return operator


def _place_model_pod(emulator: ClusterEmulator, status: dict[str, Any]) -> None:
    """A pod of the model server as Seldon's operator labels it, in the state `status` says."""
    name = "mnist-classifier-default-0-classifier-x"
    emulator.objects["v1/pods", "kubeflow", name] = {
        "metadata": {
            "name": name,
            "namespace": "kubeflow",
            "labels": {"seldon-deployment-id": "mnist-classifier"},
        },
        "spec": {"containers": [{"name": "classifier"}]},
        "status": status,
    }


def _serving_pods(emulator: ClusterEmulator) -> list[str]:
    """The rollout values of the model's pods left in the emulated cluster."""
    return [
        emulator.objects[key]["metadata"]["annotations"][ROLLOUT_ANNOTATION]
        for key in emulator.live("v1/pods")
    ]


def test_each_deploy_stamps_the_pod_template_with_a_value_of_its_own() -> None:
    first, again = manifest(_deployment()), manifest(_deployment())
    newer = manifest(_deployment(model_uri=NEWER_URI))

    assert rollout_of(first) and rollout_of(first) == rollout_of(again)
    assert rollout_of(newer) != rollout_of(first)


def test_a_redeploy_waits_for_the_new_pods_while_seldon_still_says_available(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    """Seldon's status keeps the first deploy's Available while the old pod serves."""
    emulator, api = cluster
    operator = _deployed_once(emulator, api)
    operator.pods_after = 5  # the operator is slow to roll the pods this time
    newer = _deployment(model_uri=NEWER_URI)

    deploy_model(api, newer, poll_interval=0.01)

    assert _serving_pods(emulator) == [rollout_of(manifest(newer))]


def test_a_redeploy_whose_new_pods_never_come_up_times_out_naming_the_old_ones(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    operator = _deployed_once(emulator, api)
    operator.pods_after = None
    newer = _deployment(model_uri=NEWER_URI)

    with pytest.raises(DeploymentError) as raised:
        deploy_model(api, newer, poll_interval=0.01, timeout=0.3)

    message = str(raised.value)
    assert "was not serving within 0 s" in message
    assert "waiting for the pods of this deploy (0 ready; 1 of an earlier deploy" in message
    assert _serving_pods(emulator) == [rollout_of(manifest(_deployment()))]


def test_a_crashing_pod_of_the_previous_deploy_does_not_fail_the_next_one(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    """A redeploy that fixes a crashing model server waits for its pods instead of failing."""
    emulator, api = cluster
    operator = _deployed_once(emulator, api)
    (old,) = emulator.live("v1/pods")
    crashing = {"name": "classifier", "restartCount": 5, "ready": False}
    crashing["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}
    emulator.objects[old].patch({"status": {"phase": "Running", "containerStatuses": [crashing]}})
    operator.pods_after = 3
    newer = _deployment(model_uri=NEWER_URI)

    deploy_model(api, newer, poll_interval=0.01)

    assert _serving_pods(emulator) == [rollout_of(manifest(newer))]


def test_a_failed_seldon_deployment_is_reported_with_its_message(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.controllers.append(
        Operator(SELDON, *seldon("Creating", "Failed", description="Deployment failed: no image"))
    )

    with pytest.raises(DeploymentError, match="Failed: Deployment failed: no image"):
        deploy_model(api, _deployment(), poll_interval=0.01, timeout=30)


def test_a_pod_that_cannot_pull_its_image_fails_the_wait_at_once(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.controllers.append(Operator(SELDON, *seldon("Creating"), pods_after=None))
    _place_model_pod(
        emulator,
        {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "classifier",
                    "image": IMAGE,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}},
                }
            ],
        },
    )

    with pytest.raises(DeploymentError, match="ImagePullBackOff"):
        deploy_model(api, _deployment(), poll_interval=0.01, timeout=30)


def test_a_deployment_not_serving_in_time_is_an_error_naming_its_status(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.controllers.append(Operator(SELDON, *seldon("Creating")))

    with pytest.raises(DeploymentError, match=r"not serving within 0 s \(last status: Creating"):
        deploy_model(api, _deployment(), poll_interval=0.01, timeout=0.05)


def test_kserve_inference_service_is_applied_and_waited_until_ready(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.declare(KSERVE)
    emulator.controllers.append(Operator(KSERVE, *kserve_ready()))

    served = deploy_model(api, _deployment("kserve"), poll_interval=0.01)

    assert served["status"]["url"] == "http://mnist-classifier.kubeflow.example.com"
    stored = emulator.stored(KSERVE, "kubeflow", "mnist-classifier")
    assert stored is not None
    container = stored["spec"]["predictor"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STORAGE_URI"] == MODEL_URI.replace("minio://", "s3://")
    assert container["image"] == IMAGE


def _kserve_deployed_once(emulator: ClusterEmulator, api: client.ApiClient) -> Operator:
    """The model deployed once with KServe in Standard mode; the operator, for the next one."""
    emulator.declare(KSERVE)
    operator = Operator(KSERVE, *kserve_standard("starting", "complete"))
    emulator.controllers.append(operator)
    deploy_model(api, _deployment("kserve"), poll_interval=0.01)
    return operator


def _pod_names(emulator: ClusterEmulator) -> list[str]:
    return sorted(key[2] for key in emulator.live("v1/pods"))


def test_each_kserve_deploy_stamps_the_predictors_pods_with_a_value_of_its_own() -> None:
    """Through `spec.predictor.annotations`, which KServe puts on the pod template."""
    first = manifest(_deployment("kserve"))
    newer = manifest(_deployment("kserve", model_uri=NEWER_URI))

    assert first["spec"]["predictor"]["annotations"][ROLLOUT_ANNOTATION] == rollout_of(first)
    assert rollout_of(first) and rollout_of(newer) and rollout_of(first) != rollout_of(newer)


def test_a_kserve_redeploy_waits_for_the_new_pods_while_kserve_still_says_ready(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    """KServe keeps Ready True while its Deployment rolls (`ReplicaSetUpdated`): not served yet."""
    emulator, api = cluster
    operator = _kserve_deployed_once(emulator, api)
    assert _pod_names(emulator) == ["mnist-classifier-predictor-1"]
    operator.statuses = kserve_standard(*["rolling"] * 5, "complete", generation=2)
    operator.pods_after = 5  # the Deployment's new pod is ready after five looks

    served = deploy_model(api, _deployment("kserve", model_uri=NEWER_URI), poll_interval=0.01)

    assert _pod_names(emulator) == ["mnist-classifier-predictor-2"]
    ready = next(c for c in served["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


def test_a_kserve_redeploy_whose_new_pod_crash_loops_fails_with_its_last_log_lines(
    tmp_path: Path,
) -> None:
    """The old pod keeps Ready True; the new one's crash loop fails the deploy, quoting its log."""
    emulator = ClusterEmulator()
    crash_log = "hello_kubeflow.errors.ModelError: no model directory at /mnt/models"
    emulator[lambda r: r.subresource == "log"] << crash_log.encode()
    with serving(emulator) as url:
        api = settings_api(Settings(kubeconfig=write_kubeconfig(tmp_path / "k", url)))
        operator = _kserve_deployed_once(emulator, api)
        operator.statuses = kserve_standard("rolling", generation=2)
        operator.pods_after = None  # the Deployment's new pod never becomes ready
        newer = _deployment("kserve", model_uri=NEWER_URI)
        # the kubelet's back-off message, as in test_a_model_pod_crash_looping_past_the_grace_...
        pod = "mnist-classifier-predictor-2_kubeflow(uid-predictor-2)"
        back_off = f"back-off 10s restarting failed container=kserve-container pod={pod}"
        crashing = waiting("kserve-container", "CrashLoopBackOff", back_off, restarts=1)
        emulator.objects["v1/pods", "kubeflow", "mnist-classifier-predictor-2"] = kserve_pod(
            "kubeflow",
            "mnist-classifier",
            2,
            {ROLLOUT_ANNOTATION: rollout_of(manifest(newer))},
            container=crashing,
        )

        with pytest.raises(DeploymentError) as raised:
            deploy_model(api, newer, poll_interval=0.01, timeout=30, crash_grace=0.05)

    message = str(raised.value)
    assert "mnist-classifier-predictor-2 container 'kserve-container'" in message
    assert "CrashLoopBackOff" in message
    assert f"Last log lines of container 'kserve-container' (previous run):\n    {crash_log}" in (
        message
    )


def test_a_kserve_failure_left_by_the_previous_deploy_does_not_fail_the_next_one(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    """Until the old pod is replaced, KServe's FailedToLoad describes the last deploy's model."""
    emulator, api = cluster
    operator = _kserve_deployed_once(emulator, api)
    failed = kserve_failed_to_load("no model directory at /mnt/models")
    operator.statuses = [*failed, *failed, *kserve_standard("complete", generation=2)]
    operator.pods_after = 2

    deploy_model(api, _deployment("kserve", model_uri=NEWER_URI), poll_interval=0.01)

    assert _pod_names(emulator) == ["mnist-classifier-predictor-2"]


def test_the_kserve_readiness_probe_names_the_port_the_server_listens_on() -> None:
    """A plain Deployment (KServe's RawDeployment mode) rejects an httpGet probe without one."""
    container = manifest(_deployment("kserve"))["spec"]["predictor"]["containers"][0]

    assert container["readinessProbe"]["httpGet"]["port"] == container["ports"][0]["containerPort"]


@pytest.mark.parametrize("serving_kind", ["seldon", "kserve"])
def test_the_model_server_container_names_its_command(serving_kind: str) -> None:
    """The project image's own default command is the notebook server, not the model server."""
    resource = manifest(_deployment(serving_kind))
    if serving_kind == "seldon":
        container = _containers(resource)["classifier"]
    else:
        container = resource["spec"]["predictor"]["containers"][0]

    assert container["command"] == ["python3", "-m", "hello_kubeflow.serving"]


def test_kserve_model_that_fails_to_load_is_reported(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.declare(KSERVE)
    emulator.controllers.append(Operator(KSERVE, *kserve_failed_to_load("no metadata.json")))

    with pytest.raises(DeploymentError, match=r"cannot serve the model: no metadata\.json"):
        deploy_model(api, _deployment("kserve"), poll_interval=0.01, timeout=30)


def test_auto_detection_prefers_seldon_when_both_are_installed(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.declare(KSERVE)

    assert detect_serving(api, "auto") == "seldon"


def test_auto_detection_finds_kserve_alone(tmp_path: Path) -> None:
    emulator = ClusterEmulator()
    emulator.declare(KSERVE)
    with serving(emulator) as url:
        api = settings_api(Settings(kubeconfig=write_kubeconfig(tmp_path / "k", url)))
        assert detect_serving(api, "auto") == "kserve"


def test_asking_for_a_serving_system_that_is_not_installed_says_how_to_install_it(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    _, api = cluster
    with pytest.raises(PrerequisiteError, match=r"no InferenceService resource type.*inv setup"):
        detect_serving(api, "kserve")


def test_undeploy_removes_the_served_model(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    emulator, api = cluster
    emulator.controllers.append(Operator(SELDON, *seldon("Available")))
    deploy_model(api, _deployment(), poll_interval=0.01)

    removed = undeploy(api, "kubeflow", "mnist-classifier")

    assert removed == ["SeldonDeployment kubeflow/mnist-classifier"]
    assert emulator.stored(SELDON, "kubeflow", "mnist-classifier") is None


def test_undeploy_with_nothing_deployed_removes_nothing(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    _, api = cluster
    assert undeploy(api, "kubeflow", "mnist-classifier") == []


def test_deploy_step_for_kserve_copies_the_store_keys_without_printing_them(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The step finds KServe, gives its storage initializer KFP's keys, records the run."""
    emulator = ClusterEmulator()
    emulator.declare(KSERVE)
    emulator.controllers.append(Operator(KSERVE, *kserve_ready()))
    secret = base64.b64encode(b"very-secret-key").decode()
    emulator.objects["v1/secrets", "kubeflow", "mlpipeline-minio-artifact"] = {
        "metadata": {"name": "mlpipeline-minio-artifact", "namespace": "kubeflow"},
        "data": {"accesskey": base64.b64encode(b"minio").decode(), "secretkey": secret},
    }
    with serving(emulator) as url:
        api = settings_api(Settings(kubeconfig=write_kubeconfig(tmp_path / "k", url)))
        result = deploy_step(
            api=api,
            model_uri=MODEL_URI,
            image=IMAGE,
            namespace="kubeflow",
            name="mnist-classifier",
            run_id="run-7",
            pull_secret="hello-kubeflow-registry",
            model_metadata={"parameters": {"n_estimators": 30}, "train_size": 60000},
            report_metadata={"accuracy": 0.9712, "test_size": 10000},
            poll_interval=0.01,
        )

    assert result == {"serving": "kserve", "namespace": "kubeflow", "name": "mnist-classifier"}
    predictor = (emulator.stored(KSERVE, "kubeflow", "mnist-classifier") or {})["spec"]["predictor"]
    assert predictor["imagePullSecrets"] == [{"name": "hello-kubeflow-registry"}]
    stored = emulator.stored("v1/secrets", "kubeflow", "hello-kubeflow-storage")
    assert stored is not None
    assert stored["stringData"]["AWS_SECRET_ACCESS_KEY"] == "very-secret-key"
    service = emulator.stored(KSERVE, "kubeflow", "mnist-classifier")
    assert service is not None
    assert recorded_summary(service) == {
        "accuracy": 0.9712,
        "n_estimators": 30,
        "train_size": 60000,
        "test_size": 10000,
        "run_id": "run-7",
        "model_uri": MODEL_URI,
    }
    shown = capsys.readouterr()
    assert "very-secret-key" not in shown.out + shown.err + caplog.text


def test_the_kserve_deploy_step_opens_the_model_to_the_gateway_where_istio_is(
    tmp_path: Path,
) -> None:
    """The InferenceService's AuthorizationPolicy is made beside it, whoever started the run."""
    emulator = ClusterEmulator()
    emulator.declare(KSERVE, POLICIES)
    emulator.controllers.append(Operator(KSERVE, *kserve_ready()))
    with serving(emulator) as url:
        api = settings_api(Settings(kubeconfig=write_kubeconfig(tmp_path / "k", url)))
        deploy_step(
            api=api,
            model_uri="gs://models/mnist",  # not KFP's store: no keys to copy
            image=IMAGE,
            namespace="kubeflow-user-example-com",
            name="mnist-classifier",
            poll_interval=0.01,
        )

    policy = emulator.stored(POLICIES, "kubeflow-user-example-com", "allow-mnist-classifier")
    assert policy is not None
    assert policy["spec"]["selector"] == {
        "matchLabels": {"serving.kserve.io/inferenceservice": "mnist-classifier"}
    }


def test_a_deploy_step_that_may_not_write_the_policy_says_which_rbac_to_apply(
    tmp_path: Path,
) -> None:
    """A 403 (a platform without our aggregated role) names the policy and `inv setup`."""
    emulator = ClusterEmulator()
    emulator.declare(KSERVE, POLICIES)
    emulator.controllers.append(Operator(KSERVE, *kserve_ready()))
    # the API server's Forbidden Status (kubernetes/apimachinery, the tag of kubernetes v1.34,
    # pkg/api/errors/errors.go `NewForbidden`: reason Forbidden, code 403)
    forbidden = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": 'authorizationpolicies.security.istio.io "allow-mnist-classifier" is '
        'forbidden: User "system:serviceaccount:kubeflow-user-example-com:default-editor" '
        'cannot patch resource "authorizationpolicies" in API group "security.istio.io"',
    }
    policies = emulator[lambda r: (r.resource and r.resource.plural) == "authorizationpolicies"]
    policies << 403 << forbidden
    with serving(emulator) as url:
        api = settings_api(Settings(kubeconfig=write_kubeconfig(tmp_path / "k", url)))
        with pytest.raises(PrerequisiteError) as raised:
            deploy_step(
                api=api,
                model_uri="gs://models/mnist",
                image=IMAGE,
                namespace="kubeflow-user-example-com",
                name="mnist-classifier",
                poll_interval=0.01,
            )

    message = str(raised.value)
    assert (
        "applying AuthorizationPolicy kubeflow-user-example-com/allow-mnist-classifier" in message
    )
    assert "forbidden" in message and "`inv setup`" in message


def _deploy_step_requests(tmp_path: Path, namespace: str) -> set[Call]:
    """(group, resource, verb, name) of every API request the deploy step makes, both systems."""
    made: set[Call] = set()
    for serving_kind, resource, statuses in (
        ("seldon", SELDON, seldon("Available")),
        ("kserve", KSERVE, kserve_ready()),
    ):
        emulator = ClusterEmulator()
        emulator.declare(resource, POLICIES)
        emulator.controllers.append(Operator(resource, *statuses))
        emulator.objects["v1/secrets", namespace, "mlpipeline-minio-artifact"] = {
            "metadata": {"name": "mlpipeline-minio-artifact", "namespace": namespace},
            "data": {"accesskey": "bQ==", "secretkey": "cw=="},
        }
        with serving(emulator) as url:
            api = settings_api(Settings(kubeconfig=write_kubeconfig(tmp_path / "k", url)))
            deploy_step(
                api=api,
                model_uri=MODEL_URI,
                image=IMAGE,
                namespace=namespace,
                name="mnist-classifier",
                serving=serving_kind,
                poll_interval=0.01,
            )
        for request in emulator:
            made |= calls_of(request)
    assert ("machinelearning.seldon.io", "seldondeployments", "patch", "mnist-classifier") in made
    assert ("serving.kserve.io", "inferenceservices", "create", "mnist-classifier") in made
    assert ("security.istio.io", "authorizationpolicies", "create", POLICY) in made
    # Read only when a model pod crash-loops (test_a_kserve_redeploy_whose_new_pod_crash_...).
    made.add(("", "pods/log", "get", "mnist-classifier-predictor-2"))
    return made


def test_the_rbac_manifest_allows_every_request_the_deploy_step_makes(tmp_path: Path) -> None:
    """What `inv setup` grants kubeflow/pipeline-runner covers the deploy step."""
    rules = [rule for role in cluster_roles(RBAC).values() for rule in role["rules"]]

    assert refused(rules, _deploy_step_requests(tmp_path, "kubeflow")) == []


@needs_kubeflow
def test_in_a_kubeflow_profile_default_editor_may_do_what_the_deploy_step_does(
    tmp_path: Path,
) -> None:
    """kubeflow-edit of Kubeflow 26.03, with our aggregated roles, covers both serving systems.

    The profile controller binds default-editor to kubeflow-edit in each profile
    namespace; pipeline pods run as default-editor there.
    """
    made = _deploy_step_requests(tmp_path, "kubeflow-user-example-com")

    assert refused(aggregated(kubeflow_roles(), "kubeflow-edit"), made) == []
    # Without ours, Seldon and the InferenceService's policy are forbidden.
    without = kubeflow_roles(without=["hello-kubeflow-seldon-edit"])
    assert refused(aggregated(without, "kubeflow-edit"), made)[0][1] == "seldondeployments"
    without = kubeflow_roles(without=["hello-kubeflow-kserve-policy-edit"])
    assert {(c[1], c[2]) for c in refused(aggregated(without, "kubeflow-edit"), made)} == {
        ("authorizationpolicies", "create"),
        ("authorizationpolicies", "patch"),
    }


@pytest.mark.parametrize(
    ("serving_kind", "crds", "crd_name", "version"),
    [
        (
            "seldon",
            "seldon-core-v1.17.1/operator-config-lite.yaml",
            "seldondeployments.machinelearning.seldon.io",
            "v1",
        ),
        (
            "kserve",
            "kserve-v0.20.0/kserve-crds.yaml",
            "inferenceservices.serving.kserve.io",
            "v1beta1",
        ),
    ],
)
def test_the_served_model_fits_its_crd_schema(
    serving_kind: str, crds: str, crd_name: str, version: str
) -> None:
    """What the API server would accept: the CRD's openAPIV3Schema at the pinned release."""
    docs = yaml.load_all(upstream_file(crds).read_text(), Loader=yaml.CSafeLoader)
    crd = next(d for d in docs if d and d.get("metadata", {}).get("name") == crd_name)
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]

    jsonschema.validate(manifest(_deployment(serving_kind)), schema["openAPIV3Schema"])


def test_a_model_pod_crash_looping_past_the_grace_fails_the_deploy(
    cluster: tuple[ClusterEmulator, client.ApiClient],
) -> None:
    """HK_WAIT_CRASH_GRACE decides, as in `inv wait`: not a restart count of its own."""
    emulator, api = cluster
    emulator.controllers.append(Operator(SELDON, *seldon("Creating"), pods_after=None))
    # the kubelet's message: kubernetes/kubernetes pkg/kubelet/kuberuntime/
    # kuberuntime_manager.go, doBackOff ("back-off %s restarting failed container=%s
    # pod=%s", the pod written by pkg/kubelet/util/format `Pod`: name_namespace(uid)),
    # as in test_notebook_cluster.py
    pod = "mnist-classifier-default-0-classifier-x_kubeflow(uid-classifier)"
    back_off = f"back-off 10s restarting failed container=classifier pod={pod}"
    crashing = waiting("classifier", "CrashLoopBackOff", back_off, restarts=1)
    _place_model_pod(emulator, {"phase": "Running", "containerStatuses": [crashing]})

    with pytest.raises(DeploymentError, match=r"HK_WAIT_CRASH_GRACE=0\.05"):
        deploy_model(api, _deployment(), poll_interval=0.01, timeout=30, crash_grace=0.05)


def test_every_api_call_of_undeploy_carries_the_settings_request_timeout(
    cluster: tuple[ClusterEmulator, client.ApiClient],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HK_KUBE_REQUEST_TIMEOUT reaches the wire: no module keeps a timeout of its own."""
    emulator, api = cluster
    host = api.configuration.host
    timed = settings_api(
        Settings(kubeconfig=write_kubeconfig(tmp_path / "k2", host), kube_request_timeout=7.0)
    )
    seen: list[Any] = []
    request = timed.rest_client.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("_request_timeout"))
        return request(*args, **kwargs)

    monkeypatch.setattr(timed.rest_client, "request", spy)
    emulator.controllers.append(Operator(SELDON, *seldon("Available")))
    deploy_model(timed, _deployment(), poll_interval=0.01)
    undeploy(timed, "kubeflow", "mnist-classifier")

    assert seen and set(seen) == {(5.0, 7.0)}
