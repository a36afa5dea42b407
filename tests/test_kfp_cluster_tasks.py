"""The cluster-mode tasks as a person runs them: `inv train --mode cluster`, `inv undeploy`."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from emulators import SELDON, ClusterEmulator, install_kubectl, kubectl_calls, serving
from emulators import write_kubeconfig as kubeconfig_for
from inv_support import environment_without_settings, run_inv

IMAGE = "localhost:5000/hello-kubeflow@sha256:" + "c0" * 32


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_train_dry_run_prints_the_plan_and_contacts_nothing(tmp_path: Path) -> None:
    log = install_kubectl(tmp_path / "bin", {})
    env = {
        **environment_without_settings(),
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HK_PIPELINE_IMAGE": IMAGE,
        "HK_OUTPUT_DIR": str(tmp_path / "outputs"),
        "HK_KFP_TOKEN": "tok-never-shown",
        "HK_EXPERIMENT": "mnist-tries",
    }

    done = run_inv(
        "train", "--mode", "cluster", "--dry-run", "--preset", "book", env=env, timeout=300
    )

    assert done.returncode == 0, done.stderr
    assert f"image:      {IMAGE}" in done.stdout
    assert "experiment: mnist-tries" in done.stdout
    assert "preset = 'book'" in done.stdout
    assert "kubectl port-forward svc/ml-pipeline-ui -n kubeflow" in done.stdout
    assert (tmp_path / "outputs" / "cluster-pipeline.yaml").is_file()
    assert "auth:       a bearer token (HK_KFP_TOKEN)" in done.stdout
    assert "tok-never-shown" not in done.stdout + done.stderr
    assert kubectl_calls(log) == []


def test_train_dry_run_json_is_the_last_line(tmp_path: Path) -> None:
    env = {
        **environment_without_settings(),
        "HK_PIPELINE_IMAGE": IMAGE,
        "HK_OUTPUT_DIR": str(tmp_path / "outputs"),
        "HK_KFP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
    }

    done = run_inv(
        "train", "--mode", "cluster", "--dry-run", "--trees", "12", "--json", env=env, timeout=300
    )

    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    assert plan["image"] == IMAGE
    assert plan["parameters"]["n_estimators"] == 12
    assert plan["endpoint"].startswith(env["HK_KFP_ENDPOINT"])


def test_train_on_an_unpinned_image_exits_1_with_the_fix(tmp_path: Path) -> None:
    env = {
        **environment_without_settings(),
        "HK_MODE": "cluster",
        "HK_PIPELINE_IMAGE": "localhost:5000/hello-kubeflow:latest",
        "HK_OUTPUT_DIR": str(tmp_path / "outputs"),
        "HK_KFP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
    }

    done = run_inv("train", env=env, timeout=300)

    assert done.returncode == 1
    assert "not pinned by digest" in done.stderr and "inv build-push" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("json_output", [False, True])
def test_undeploy_removes_the_served_model(tmp_path: Path, json_output: bool) -> None:
    emulator = ClusterEmulator()
    emulator.declare(SELDON)
    emulator.objects[SELDON, "team-a", "digits"] = {
        "metadata": {"name": "digits", "namespace": "team-a"},
        "spec": {},
    }
    with serving(emulator) as url:
        env = {
            **environment_without_settings(),
            "KUBECONFIG": str(kubeconfig_for(tmp_path / "k", url)),
            "HK_NAMESPACE": "team-a",
        }
        flags = ["--json"] if json_output else []
        done = run_inv("undeploy", "--name", "digits", *flags, env=env, timeout=300)
        again = run_inv("undeploy", "--name", "digits", env=env, timeout=300)

    assert done.returncode == 0, done.stderr
    if json_output:
        assert json.loads(done.stdout.splitlines()[-1])["removed"] == [
            "SeldonDeployment team-a/digits"
        ]
    else:
        assert "removed SeldonDeployment team-a/digits" in done.stdout
    assert "nothing to remove at team-a/digits" in again.stdout


def test_train_shows_progress_by_display_name_and_a_failure_with_its_log_tail(
    tmp_path: Path,
) -> None:
    """`inv train --mode cluster` against the emulated KFP and Kubernetes APIs, as run by hand."""
    import asyncio

    from kfp_emulator import KfpEmulator, failing

    kfp = KfpEmulator()
    kfp.script = failing("train")
    kube = ClusterEmulator()
    kube.declare(SELDON)

    def argo_runs_the_step(run_id: str, body: dict[str, object]) -> None:
        pod = kfp.executor_pod(run_id, "train", "kubeflow", reason="OOMKilled", exit_code=137)
        name = pod["metadata"]["name"]

        async def place() -> None:
            kube.objects["v1/pods", "kubeflow", name] = pod
            kube[f"get /api/v1/namespaces/kubeflow/pods/{name}/log"] << (
                b"fitting 30 trees on 60,000 images\nKilled\n"
            )

        assert kube.loop is not None
        asyncio.run_coroutine_threadsafe(place(), kube.loop).result(10)

    kfp.on_run_created = argo_runs_the_step
    with serving(kfp.handler) as kfp_url, serving(kube) as kube_url:
        env = {
            **environment_without_settings(),
            "HK_PIPELINE_IMAGE": IMAGE,
            "HK_OUTPUT_DIR": str(tmp_path / "outputs"),
            "HK_KFP_ENDPOINT": kfp_url,
            "KUBECONFIG": str(kubeconfig_for(tmp_path / "kubeconfig", kube_url)),
        }
        done = run_inv("train", "--mode", "cluster", "--trees", "30", env=env, timeout=300)

    assert done.returncode == 1
    assert "step load MNIST: RUNNING" in done.stderr
    assert "step train model: FAILED" in done.stderr
    assert "FAILED at step 'train model'" in done.stderr
    assert ": OOMKilled, exit code 137" in done.stderr
    assert "| Killed" in done.stderr
    assert "executor" not in done.stderr and "Traceback" not in done.stderr
