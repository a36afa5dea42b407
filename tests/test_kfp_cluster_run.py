"""`inv train --mode cluster` end to end against emulated Kubeflow Pipelines and Kubernetes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver import ApiServer
from emulators import (
    SELDON,
    ClusterEmulator,
    RunningCluster,
    install_kubectl,
    is_pod_list,
    kubectl_calls,
    serving,
)
from emulators import write_kubeconfig as kubeconfig_for
from kfp_emulator import KfpEmulator, failing, never_ending
from kube_support import unschedulable, waiting
from test_kfp_profile_check import PROFILE, default_editor, profile_namespace

from hello_kubeflow.deploy.model_manifests import ModelDeployment, seldon_deployment
from hello_kubeflow.deploy.pull_secret import PULL_SECRET
from hello_kubeflow.errors import KfpError, PrerequisiteError, RunFailedError
from hello_kubeflow.gateway.endpoints import Auth
from hello_kubeflow.kfp.cluster_run import plan, run_parameters, train_on_cluster, undeploy_model
from hello_kubeflow.kfp.remote import Patience, connect
from hello_kubeflow.kfp.runs import ensure_experiment, start_run, upload_pipeline
from hello_kubeflow.pipeline.local import RunOptions
from hello_kubeflow.settings import DEFAULT_MNIST_MIRRORS, Settings

DIGEST = "sha256:" + "5e" * 32
IMAGE = f"localhost:5000/hello-kubeflow@{DIGEST}"
FAST = Patience(
    request_timeout=5.0, retry_deadline=3.0, retry_initial_wait=0.01, poll_interval=0.01
)
MODEL_URI = "minio://mlpipeline/v2/artifacts/hello-kubeflow-mnist/{run}/train/1/model"
OPTIONS = RunOptions(preset="book", n_estimators=30, seed=7, train_limit=500, test_limit=100)


@dataclass
class Cluster:
    """Both emulators, and settings pointing at them."""

    kfp: KfpEmulator
    kube: ClusterEmulator
    settings: Settings


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    kfp = KfpEmulator()
    kube = ClusterEmulator()
    kube.declare(SELDON)
    with serving(kfp.handler) as kfp_url, serving(kube) as kube_url:
        settings = Settings(
            output_dir=tmp_path / "outputs",
            pipeline_image=IMAGE,
            kfp_endpoint=kfp_url,
            kubeconfig=kubeconfig_for(tmp_path / "kubeconfig", kube_url),
            serving="seldon",
            n_jobs=2,
            download_timeout=9.0,
            kube_request_timeout=12.0,
            wait_crash_grace=45.0,
        )
        yield Cluster(kfp, kube, settings)


def _deploy_step_runs_in(kube: ClusterEmulator) -> Any:
    """What the run's `deploy` step does to the cluster: the model served, recorded."""

    def deploy(run_id: str, body: dict[str, Any]) -> None:
        parameters = body["runtime_config"]["parameters"]
        served = seldon_deployment(
            ModelDeployment(
                name=parameters["deployment_name"],
                namespace=parameters["namespace"],
                serving="seldon",
                image=IMAGE,
                model_uri=MODEL_URI.format(run=run_id),
                run_id=run_id,
                summary={"accuracy": 0.9123, "n_estimators": 30, "train_size": 500},
            )
        )
        served["status"] = {"state": "Available"}
        kube.objects[SELDON, parameters["namespace"], parameters["deployment_name"]] = served

    return deploy


# ---- --dry-run


def test_dry_run_shows_what_a_run_would_use_and_contacts_nothing(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = install_kubectl(tmp_path / "bin", {})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")

    shown = plan(cluster.settings, OPTIONS)

    assert shown.image == IMAGE and shown.pinned
    assert shown.endpoint.startswith(cluster.settings.kfp_endpoint or "?")
    assert shown.experiment == "hello-kubeflow"
    assert shown.parameters["preset"] == "book"
    assert shown.parameters["n_estimators"] == 30
    assert shown.parameters["deployment_name"] == "mnist-classifier"
    assert Path(shown.package).is_file()
    assert "dry run: nothing was contacted" in shown.describe()
    assert shown.as_dict()["image"] == IMAGE
    assert cluster.kfp.seen == []
    assert kubectl_calls(log) == []


def test_dry_run_without_an_endpoint_names_the_port_forward_it_would_start(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = install_kubectl(tmp_path / "bin", {})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")

    shown = plan(cluster.settings.replace(kfp_endpoint=None), OPTIONS)

    assert "kubectl port-forward svc/ml-pipeline-ui -n kubeflow" in shown.endpoint
    assert kubectl_calls(log) == []


def test_the_compiled_pipeline_ends_by_deploying_with_the_image_by_digest(
    cluster: Cluster,
) -> None:
    shown = plan(cluster.settings, OPTIONS)

    spec = yaml.safe_load(Path(shown.package).read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}
    deploy = spec["root"]["dag"]["tasks"]["deploy-model"]
    assert deploy["taskInfo"]["name"] == "deploy model"
    assert deploy["inputs"]["parameters"]["image"]["runtimeValue"]["constant"] == IMAGE


# ---- a private registry: the image pull secret

PASSWORD = "s3cret-registry-password"


def _with_login(settings: Settings) -> Settings:
    return settings.replace(
        container_registry="localhost:5000", registry_username="me", registry_password=PASSWORD
    )


def test_dry_run_with_a_registry_login_names_the_pull_secret_never_the_password(
    cluster: Cluster,
) -> None:
    shown = plan(_with_login(cluster.settings), OPTIONS)

    text = shown.describe() + json.dumps(shown.as_dict()) + repr(shown)
    assert "pull secret: hello-kubeflow-registry (me@localhost:5000" in shown.describe()
    assert PASSWORD not in text and PASSWORD not in Path(shown.package).read_text()
    assert cluster.kfp.seen == []


def test_without_a_registry_login_the_pipeline_carries_no_platform_spec(
    cluster: Cluster,
) -> None:
    shown = plan(cluster.settings, OPTIONS)

    assert len(list(yaml.safe_load_all(Path(shown.package).read_text()))) == 1
    assert "pull secret: none" in shown.describe()


def test_a_run_from_a_private_registry_pulls_every_step_with_the_secret_it_made(
    cluster: Cluster,
) -> None:
    """The secret exists before the run starts; every step's pod, and the deploy step, name it."""
    secrets_at_start: list[Any] = []
    deploy = _deploy_step_runs_in(cluster.kube)

    def run_created(run_id: str, body: dict[str, Any]) -> None:
        secrets_at_start.append(cluster.kube.stored("v1/secrets", "kubeflow", PULL_SECRET))
        deploy(run_id, body)

    cluster.kfp.on_run_created = run_created

    summary = train_on_cluster(_with_login(cluster.settings), OPTIONS, patience=FAST)

    [secret] = secrets_at_start
    assert secret is not None and secret["type"] == "kubernetes.io/dockerconfigjson"
    steps = ("load-data", "train", "evaluate", "deploy-model")
    for step in steps:
        pod = cluster.kfp.executor_pod(summary.run_id, step, "kubeflow", reason="", exit_code=0)
        assert pod["spec"]["imagePullSecrets"] == [{"name": PULL_SECRET}], step
    [upload] = cluster.kfp.uploads
    spec = next(yaml.safe_load_all(upload))
    given = spec["root"]["dag"]["tasks"]["deploy-model"]["inputs"]["parameters"]["pull_secret"]
    assert given["runtimeValue"]["constant"] == PULL_SECRET


def test_a_kubernetes_config_kfp_cannot_read_fails_the_run_creation(cluster: Cluster) -> None:
    """The emulator is as strict as KFP 2.17's protojson for each step's Kubernetes config."""
    settings = _with_login(cluster.settings)
    package = Path(plan(settings, OPTIONS).package)
    spec, platform = yaml.safe_load_all(package.read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executors["exec-train"]["imagePullSecrets"] = [{"name": PULL_SECRET}]  # the pod's spelling
    package.write_text(yaml.safe_dump_all([spec, platform]))
    session = connect(settings.kfp_endpoint or "", Auth(), patience=FAST)
    pipeline = upload_pipeline(session, package, "hello-kubeflow-mnist")

    with pytest.raises(KfpError) as raised:
        start_run(
            session,
            experiment_id=ensure_experiment(session, "hello-kubeflow"),
            pipeline=pipeline,
            run_name="typo",
            parameters=run_parameters(settings, OPTIONS),
        )

    assert "failed to unmarshal kubernetes config" in str(raised.value)
    assert cluster.kfp.runs == {}


def test_with_a_login_but_no_kubeconfig_the_run_stops_saying_how_to_make_the_secret(
    cluster: Cluster, tmp_path: Path
) -> None:
    settings = _with_login(cluster.settings).replace(kubeconfig=tmp_path / "missing")

    with pytest.raises(PrerequisiteError) as raised:
        train_on_cluster(settings, OPTIONS, patience=FAST)

    said = str(raised.value)
    assert "kubectl create secret docker-registry hello-kubeflow-registry" in said
    assert "--docker-server=localhost:5000" in said
    assert PASSWORD not in said
    assert cluster.kfp.runs == {}


# ---- a run


def test_a_cluster_run_reports_what_the_served_model_recorded(cluster: Cluster) -> None:
    cluster.kfp.on_run_created = _deploy_step_runs_in(cluster.kube)

    summary = train_on_cluster(cluster.settings, OPTIONS, patience=FAST)

    assert summary.state == "SUCCEEDED"
    assert summary.accuracy == pytest.approx(0.9123)
    assert summary.model_uri == MODEL_URI.format(run=summary.run_id)
    assert summary.run_url == f"{cluster.settings.kfp_endpoint}/#/runs/details/{summary.run_id}"
    text = summary.describe()
    assert "test accuracy: 91.23%" in text
    assert "SeldonDeployment kubeflow/mnist-classifier" in text
    assert summary.as_dict()["run_id"] == summary.run_id


def test_a_cluster_run_uploads_the_compiled_pipeline_and_passes_the_options(
    cluster: Cluster,
) -> None:
    """The options and the settings the steps need travel as parameters (not a pod's env)."""
    cluster.kfp.on_run_created = _deploy_step_runs_in(cluster.kube)

    summary = train_on_cluster(cluster.settings, OPTIONS, patience=FAST)

    [upload] = cluster.kfp.uploads
    assert IMAGE.encode() in upload
    parameters = cluster.kfp.runs[summary.run_id]["body"]["runtime_config"]["parameters"]
    assert parameters == {
        "model_kind": "forest",
        "preset": "book",
        "n_estimators": 30,
        "seed": 7,
        "n_jobs": 2,
        "mnist_dir": "",
        "mnist_mirrors": ",".join(DEFAULT_MNIST_MIRRORS),
        "cache_dir": "",
        "download_timeout": 9.0,
        "train_limit": 500,
        "test_limit": 100,
        "namespace": "kubeflow",
        "deployment_name": "mnist-classifier",
        "serving": "seldon",
        "model_name": "mnist-classifier",
        "kube_request_timeout": 12.0,
        "crash_grace": 45.0,
    }
    assert [e["display_name"] for e in cluster.kfp.experiments.values()] == ["hello-kubeflow"]


def test_a_failed_cluster_run_names_the_step_its_reason_and_its_log_tail(
    cluster: Cluster,
) -> None:
    """The step by display name, its pod's end, and the last log lines, read from Kubernetes."""
    cluster.kfp.script = failing("deploy-model")
    said = (
        "Traceback (most recent call last):\n"
        "hello_kubeflow.errors.PrerequisiteError: creating SeldonDeployment "
        "kubeflow/mnist-classifier: forbidden (403)\n"
    )

    def argo_runs_the_step(run_id: str, body: dict[str, Any]) -> None:
        pod = cluster.kfp.executor_pod(
            run_id, "deploy-model", "kubeflow", reason="Error", exit_code=1
        )
        name = pod["metadata"]["name"]

        async def place() -> None:
            cluster.kube.objects["v1/pods", "kubeflow", name] = pod
            cluster.kube[f"get /api/v1/namespaces/kubeflow/pods/{name}/log"] << said.encode()

        assert cluster.kube.loop is not None
        asyncio.run_coroutine_threadsafe(place(), cluster.kube.loop).result(10)

    cluster.kfp.on_run_created = argo_runs_the_step

    with pytest.raises(RunFailedError) as raised:
        train_on_cluster(cluster.settings, OPTIONS, patience=FAST)

    message = str(raised.value)
    assert "FAILED at step 'deploy model'" in message
    assert ": Error, exit code 1" in message
    assert "| hello_kubeflow.errors.PrerequisiteError: creating SeldonDeployment" in message


def test_an_image_not_pinned_by_digest_is_refused_before_contacting_anything(
    cluster: Cluster,
) -> None:
    settings = cluster.settings.replace(pipeline_image="localhost:5000/hello-kubeflow:latest")

    with pytest.raises(PrerequisiteError, match=r"not pinned by digest.*inv build-push"):
        train_on_cluster(settings, OPTIONS, patience=FAST)
    assert cluster.kfp.seen == []


def test_without_a_kubeconfig_the_summary_lacks_only_the_accuracy(
    cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = cluster.settings.replace(kubeconfig=tmp_path / "absent")

    summary = train_on_cluster(settings, OPTIONS, patience=FAST)

    assert summary.state == "SUCCEEDED"
    assert summary.accuracy is None
    assert "test accuracy: unknown" in summary.describe()
    assert "the served model could not be read" in caplog.text


# ---- undeploy


def test_undeploy_removes_the_model_the_run_served(cluster: Cluster) -> None:
    cluster.kfp.on_run_created = _deploy_step_runs_in(cluster.kube)
    train_on_cluster(cluster.settings, OPTIONS, patience=FAST)

    removed = undeploy_model(cluster.settings)

    assert removed == ["SeldonDeployment kubeflow/mnist-classifier"]
    assert undeploy_model(cluster.settings) == []


# ---- a run that can never start

# The kubelet's waiting message for an image in back-off (kubernetes v1.34,
# pkg/kubelet/images/image_manager.go: "Back-off pulling image %q").
BACK_OFF = f'Back-off pulling image "{IMAGE}"'
# The scheduler's message for a pod no node fits (kubernetes v1.34,
# pkg/scheduler/framework/types.go `FitError.Error`, noderesources "Insufficient memory").
NO_ROOM = (
    "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)


def _pull_fails(container: str = "main") -> dict[str, Any]:
    """A pod whose node cannot pull `container`'s image: Pending, waiting in back-off.

    The kubelet's shape (kubernetes v1.34): a container whose image is not
    pulled waits with the reason `ImagePullBackOff` (pkg/kubelet/images/types.go
    `ErrImagePullBackOff`) and the message above (pkg/kubelet/images/image_manager.go
    `EnsureImageExists`); a pod with a container not yet started stays `Pending`
    (pkg/kubelet/kubelet_pods.go `getPhase`). The other container (Argo's `wait`)
    runs; the `restartCount`/`ready` fields are core/v1 `ContainerStatus`'s.
    """
    return {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [
            {"name": "wait", "ready": False, "restartCount": 0, "state": {"running": {}}},
            waiting(container, "ImagePullBackOff", BACK_OFF),
        ],
    }


def _no_room() -> dict[str, Any]:
    """A pod the scheduler cannot place."""
    return {"phase": "Pending", "conditions": unschedulable(NO_ROOM)}


def _argo_makes_pod(cluster: Cluster, status: dict[str, Any], *, other_run: bool = False) -> Any:
    """On run creation, the run's `load-data` executor pod appears with `status`."""

    def place_pod(run_id: str, body: dict[str, Any]) -> None:
        pod = cluster.kfp.pending_pod(run_id, "load-data", "kubeflow", image=IMAGE, status=status)
        if other_run:
            pod["metadata"]["labels"]["pipeline/runid"] = "another-run"
        name = pod["metadata"]["name"]

        async def place() -> None:
            cluster.kube.objects["v1/pods", "kubeflow", name] = pod

        assert cluster.kube.loop is not None
        asyncio.run_coroutine_threadsafe(place(), cluster.kube.loop).result(10)

    return place_pod


def _pods_listed_by_run(cluster: Cluster) -> list[str]:
    """The `labelSelector` of each pod list the emulated API server was asked for."""

    async def seen() -> list[str]:
        return [str(r.params.get("labelSelector")) for r in list(cluster.kube) if is_pod_list(r)]

    assert cluster.kube.loop is not None
    return asyncio.run_coroutine_threadsafe(seen(), cluster.kube.loop).result(10)


def _the_run_id(cluster: Cluster) -> str:
    [run_id] = cluster.kfp.runs
    return str(run_id)


def test_a_run_whose_step_cannot_pull_the_image_fails_at_once_naming_pod_and_fix(
    cluster: Cluster,
) -> None:
    """Not RUNNING until HK_RUN_TIMEOUT: the pod, ImagePullBackOff, the image, what to do."""
    cluster.kfp.script = never_ending()
    cluster.kfp.on_run_created = _argo_makes_pod(cluster, _pull_fails())
    settings = cluster.settings.replace(run_timeout=60.0)

    with pytest.raises(RunFailedError) as raised:
        train_on_cluster(settings, OPTIONS, patience=FAST)

    message = str(raised.value)
    assert re.search(r"run \S+ cannot finish: pod kubeflow/\S+-system-container-impl-\d+", message)
    assert f"container 'main' is in ImagePullBackOff: {BACK_OFF}" in message
    assert f"cannot pull the pipeline image {IMAGE}" in message
    assert "inv build-push" in message and "cancel it" in message
    assert "did not finish within" not in message


def test_a_pull_failure_of_kubeflows_own_image_says_to_mirror_it(cluster: Cluster) -> None:
    cluster.kfp.script = never_ending()
    status = _pull_fails("wait")
    # ErrImagePull's message is the container runtime's error as is (kubernetes
    # v1.34, pkg/kubelet/images/image_manager.go `EnsureImageExists`:
    # `imagePullResult.err.Error()`); containerd's for a refused pull begins
    # "pull access denied, repository does not exist or may require authorization"
    # (containerd/containerd core/remotes/docker/resolver.go `Resolve`). The short
    # "pull access denied" here is test data not checked against a whole runtime message.
    status["containerStatuses"] = [waiting("wait", "ErrImagePull", "pull access denied")]
    cluster.kfp.on_run_created = _argo_makes_pod(cluster, status)

    with pytest.raises(RunFailedError) as raised:
        train_on_cluster(cluster.settings.replace(run_timeout=60.0), OPTIONS, patience=FAST)

    message = str(raised.value)
    assert "container 'wait' is in ErrImagePull: pull access denied" in message
    assert "quay.io/argoproj/argoexec:v4.0.5 is Kubeflow Pipelines' own" in message
    assert "inv setup --dry-run" in message


def test_a_step_no_node_has_room_for_fails_after_the_grace_with_the_schedulers_words(
    cluster: Cluster,
) -> None:
    cluster.kfp.script = never_ending()
    cluster.kfp.on_run_created = _argo_makes_pod(cluster, _no_room())
    settings = cluster.settings.replace(run_timeout=60.0, run_unschedulable_grace=0.001)

    with pytest.raises(RunFailedError) as raised:
        train_on_cluster(settings, OPTIONS, patience=FAST)

    message = str(raised.value)
    assert f"has been Unschedulable for 0 s: {NO_ROOM}" in message
    assert "give the cluster more CPU or memory" in message
    assert "HK_RUN_UNSCHEDULABLE_GRACE" in message


def test_an_unschedulable_step_within_the_grace_is_waited_for(cluster: Cluster) -> None:
    cluster.kfp.script = never_ending()
    cluster.kfp.on_run_created = _argo_makes_pod(cluster, _no_room())
    settings = cluster.settings.replace(run_timeout=0.5, run_unschedulable_grace=600.0)

    with pytest.raises(RunFailedError, match="did not finish within"):
        train_on_cluster(settings, OPTIONS, patience=FAST)

    # the pods were looked at, and their state judged: waited for, not a failure
    assert f"pipeline/runid={_the_run_id(cluster)}" in _pods_listed_by_run(cluster)


def test_another_runs_broken_pod_does_not_stop_this_run(cluster: Cluster) -> None:
    """Only the pods labelled `pipeline/runid=<this run>` count."""
    cluster.kfp.on_run_created = _argo_makes_pod(cluster, _pull_fails(), other_run=True)
    deploy = _deploy_step_runs_in(cluster.kube)
    placed = cluster.kfp.on_run_created

    def both(run_id: str, body: dict[str, Any]) -> None:
        placed(run_id, body)
        deploy(run_id, body)

    cluster.kfp.on_run_created = both

    summary = train_on_cluster(cluster.settings, OPTIONS, patience=FAST)

    assert summary.state == "SUCCEEDED"
    # the pods were looked at, only this run's
    assert f"pipeline/runid={summary.run_id}" in _pods_listed_by_run(cluster)


# ---- a multi-user profile that is not ready


def test_a_profile_namespace_without_its_artifact_secret_stops_before_uploading(
    tmp_path: Path,
) -> None:
    """Multi-user KFP: the run would fail in a namespace KFP has not set up yet."""
    kfp = KfpEmulator()
    kfp.multi_user = True
    kube = ApiServer()
    with serving(kfp.handler) as kfp_url, RunningCluster(kube) as running:
        running.put_object("v1/namespaces", None, PROFILE, profile_namespace())
        running.put_object("v1/serviceaccounts", PROFILE, "default-editor", default_editor())
        settings = running.settings(
            tmp_path,
            output_dir=tmp_path / "outputs",
            pipeline_image=IMAGE,
            kfp_endpoint=kfp_url,
            serving="seldon",
            namespace=PROFILE,
        )

        with pytest.raises(PrerequisiteError) as raised:
            train_on_cluster(settings, OPTIONS, patience=FAST)

    assert f"{PROFILE} has no Secret mlpipeline-minio-artifact" in str(raised.value)
    assert kfp.uploads == [] and kfp.runs == {}


def test_a_step_pod_missing_its_secret_fails_naming_it(cluster: Cluster) -> None:
    """The kubelet's CreateContainerConfigError: the Secret is named, not waited for."""
    cluster.kfp.script = never_ending()
    status = _pull_fails()
    # The kubelet's message for a container whose env names a missing Secret: its
    # secret manager's NotFound for resource "secret" (kubernetes v1.34,
    # pkg/kubelet/kubelet_pods.go `makeEnvironmentVariables`). The name is test data.
    said = 'secret "mlpipeline-minio-artifact" not found'
    status["containerStatuses"] = [waiting("main", "CreateContainerConfigError", said)]
    cluster.kfp.on_run_created = _argo_makes_pod(cluster, status)

    with pytest.raises(RunFailedError) as raised:
        train_on_cluster(cluster.settings.replace(run_timeout=60.0), OPTIONS, patience=FAST)

    message = str(raised.value)
    assert f"container 'main' is in CreateContainerConfigError: {said}" in message
    assert "the profile namespace is not ready yet" in message
