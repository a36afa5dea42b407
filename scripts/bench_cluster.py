"""Benchmark cluster mode's own overhead against the emulators the tests use.

No cluster runs here: Kubeflow Pipelines and Kubernetes are the tests' kmock
emulators on 127.0.0.1, driven by the real `kfp.Client` and `kubernetes`
client. The figures are our client-side cost (compile, HTTP round trips,
parsing, polling), not a cluster's. Run from the repository root:

    .venv/bin/python scripts/bench_cluster.py
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emulators import (
    SELDON,
    ClusterEmulator,
    Operator,
    install_kubectl,
    seldon,
    serving,
    settings_api,
    write_kubeconfig,
)
from kfp_emulator import KfpEmulator, never_ending

from hello_kubeflow.deploy.deploy import deploy_model
from hello_kubeflow.deploy.model_manifests import ModelDeployment
from hello_kubeflow.gateway.endpoints import Auth
from hello_kubeflow.kfp.remote import Patience, connect
from hello_kubeflow.kfp.runs import ensure_experiment, start_run, upload_pipeline
from hello_kubeflow.kube.port_forward import port_forward
from hello_kubeflow.pipeline.local import compile_pipeline
from hello_kubeflow.settings import Settings

IMAGE = "localhost:5001/hello-kubeflow@sha256:" + "ab" * 32
FAST = Patience(retry_initial_wait=0.01, poll_interval=0.01)


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, max) seconds of `repeat` runs of `work`."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def main() -> None:
    logging.disable(logging.INFO)
    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        package = root / "pipeline.yaml"

        def compile_once() -> object:
            return compile_pipeline(Settings(), package, image=IMAGE, deploy=True)

        rows.append(("compile the cluster pipeline (5 steps)", 3, *timed(compile_once, 3)))

        emulator = KfpEmulator()
        emulator.script = never_ending()
        with serving(emulator.handler) as url:

            def submit() -> str:
                session = connect(url, Auth(token="t"), patience=FAST)
                ref = upload_pipeline(session, package, "hello-kubeflow-mnist")
                experiment = ensure_experiment(session, "hello-kubeflow")
                return start_run(
                    session, experiment_id=experiment, pipeline=ref, run_name="b", parameters={}
                )

            rows.append(("connect + upload + experiment + start run", 10, *timed(submit, 10)))
            session = connect(url, Auth(token="t"), patience=FAST)
            run_id = submit()
            rows.append(
                (
                    "one poll of the run (get_run, 1 step)",
                    50,
                    *timed(lambda: session.client.get_run(run_id), 50),
                )
            )

        cluster = ClusterEmulator()
        cluster.declare(SELDON)
        cluster.controllers.append(Operator(SELDON, *seldon("Available")))
        with serving(cluster) as kube_url:
            api = settings_api(Settings(kubeconfig=write_kubeconfig(root / "k", kube_url)))
            deployment = ModelDeployment(
                name="mnist-classifier",
                namespace="kubeflow",
                serving="seldon",
                image=IMAGE,
                model_uri="minio://mlpipeline/v2/artifacts/p/r/train/1/model",
            )
            rows.append(
                (
                    "deploy: server-side apply + status read",
                    20,
                    *timed(lambda: deploy_model(api, deployment, poll_interval=0.01), 20),
                )
            )

            install_kubectl(root / "bin", {"svc/x": kube_url.split("://")[1]})
            os.environ["PATH"] = f"{root / 'bin'}:{os.environ['PATH']}"

            def forward() -> None:
                with port_forward("svc/x", "default", 80):
                    pass

            rows.append(("port-forward start to ready (stand-in kubectl)", 5, *timed(forward, 5)))

    print("| what | runs | median ms | max ms |")
    print("|---|---|---|---|")
    for what, runs, median, worst in rows:
        print(f"| {what} | {runs} | {median * 1000:.1f} | {worst * 1000:.1f} |")


if __name__ == "__main__":
    main()
