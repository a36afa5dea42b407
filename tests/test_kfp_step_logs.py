"""A failed step explained from its executor pod, read through the (emulated) Kubernetes API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from emulators import RunningCluster, serving, settings_api
from kfp_emulator import STEPS, KfpEmulator, failing, write_package
from test_kfp_remote import FAST, PIPELINE

from hello_kubeflow.errors import RunFailedError
from hello_kubeflow.gateway.endpoints import Auth
from hello_kubeflow.kfp.remote import connect
from hello_kubeflow.kfp.runs import (
    FailedStep,
    ensure_experiment,
    follow_run,
    start_run,
    step_names,
    upload_pipeline,
)
from hello_kubeflow.kfp.step_logs import explain_failed_step

NAMESPACE = "kubeflow"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return write_package(tmp_path / "pipeline.yaml", PIPELINE)


LOG = "".join(f"epoch {i}\n" for i in range(40)) + "MemoryError: cannot allocate 2.1 GiB\n"


def _serve_log(cluster: RunningCluster, pod: str, text: str) -> None:
    """What the API server streams for `GET .../pods/<pod>/log`: text, `tailLines` honoured."""
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/log"

    def answer(request: Any) -> bytes:
        lines = text.splitlines(keepends=True)
        tail = int(request.params.get("tailLines") or len(lines))
        return "".join(lines[-tail:]).encode()

    cluster.call(lambda: cluster.emulator[f"get {path}"] << answer)


def test_a_failed_run_says_why_with_the_pods_reason_and_log_tail(
    tmp_path: Path, package: Path
) -> None:
    """`inv train --mode cluster` shows the step, the container's end and its last log lines."""
    emulator = KfpEmulator()
    emulator.script = failing("train")
    with RunningCluster() as cluster, serving(emulator.handler) as url:
        api = settings_api(cluster.settings(tmp_path))
        session = connect(url, Auth(), patience=FAST)
        pipeline = upload_pipeline(session, package, PIPELINE)
        run_id = start_run(
            session,
            experiment_id=ensure_experiment(session, "hello-kubeflow"),
            pipeline=pipeline,
            run_name="a run",
            parameters={},
        )
        pod = emulator.executor_pod(run_id, "train", NAMESPACE, reason="OOMKilled", exit_code=137)
        cluster.add(pod)
        _serve_log(cluster, pod["metadata"]["name"], LOG)

        with pytest.raises(RunFailedError) as raised:
            follow_run(
                session,
                run_id,
                timeout=30,
                steps=step_names(package),
                explain_failure=lambda step: explain_failed_step(api, NAMESPACE, step),
            )

    message = str(raised.value)
    assert "FAILED at step 'train model'" in message
    assert f"Pod {NAMESPACE}/{pod['metadata']['name']}: OOMKilled, exit code 137" in message
    assert "| MemoryError: cannot allocate 2.1 GiB" in message
    assert "| epoch 21" in message and "| epoch 20\n" not in message  # the last 20 lines only


def test_a_step_whose_pod_is_gone_is_explained_with_how_to_look(tmp_path: Path) -> None:
    with RunningCluster() as cluster:
        api = settings_api(cluster.settings(tmp_path))

        said = explain_failed_step(
            api, NAMESPACE, FailedStep("train model", "train", "wf-abc12-123")
        )

    assert said == (
        f"See its log: kubectl logs -n {NAMESPACE} -c main "
        "-l workflows.argoproj.io/workflow=wf-abc12"
    )


def test_step_names_come_from_the_compiled_package(package: Path) -> None:
    assert step_names(package) == STEPS


def test_a_package_that_is_not_a_pipeline_is_an_error_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("just: text\n")

    with pytest.raises(Exception, match="not a compiled Kubeflow Pipelines v2 package"):
        step_names(path)


def test_a_retried_executors_pod_is_found_by_its_node_name(tmp_path: Path) -> None:
    """With a retry strategy the executor is a Retry node; its pods are `executor(N)`."""
    emulator = KfpEmulator()
    emulator.runs["r"] = {"workflow": "hello-kubeflow-mnist-12345"}
    pod = emulator.executor_pod("r", "train", NAMESPACE, reason="Error", exit_code=2)
    pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"] = "hello-kubeflow-mnist-12345-9"
    pod["metadata"]["annotations"]["workflows.argoproj.io/node-name"] += "(1)"
    with RunningCluster() as cluster:
        cluster.add(pod)
        _serve_log(cluster, pod["metadata"]["name"], "ValueError: bad preset\n")
        api = settings_api(cluster.settings(tmp_path))
        retry_node = emulator.node_id("r", "hello-kubeflow-mnist-12345.root.train.executor")

        said = explain_failed_step(api, NAMESPACE, FailedStep("train model", "train", retry_node))

    assert "Error, exit code 2" in said and "| ValueError: bad preset" in said
