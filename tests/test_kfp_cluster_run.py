"""`inv train --mode cluster` end to end against emulated Kubeflow Pipelines and Kubernetes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulators import SELDON, ClusterEmulator, install_kubectl, kubectl_calls, serving
from emulators import write_kubeconfig as kubeconfig_for
from kfp_emulator import KfpEmulator, failing

from hello_kubeflow.errors import PrerequisiteError, RunFailedError
from hello_kubeflow.kfp.cluster_run import plan, train_on_cluster, undeploy_model
from hello_kubeflow.kfp.remote import Patience
from hello_kubeflow.kube.model_manifests import ModelDeployment, seldon_deployment
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
