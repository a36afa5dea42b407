"""Benchmark cluster mode against emulators with the real backends' shapes.

Measures, on 127.0.0.1, with the emulators the tests use:

- a run's poll: one `get_run` answered with the 2.17.0 backend's task details
  (every Argo node of the 4-step pipeline) and turned into step states;
- the delay from a step's state change on the server to `follow_run` reporting
  it, at a given poll interval (the task polls every 5 s);
- the Dex / oauth2-proxy login: round trips and time;
- the model hand-over through a real S3 API (moto): the launcher-style upload,
  KServe's and Seldon's storage initializers' download, the first answer of our
  server on what was downloaded.

Run from the repository root (full MNIST at HK_TEST_MNIST_DIR or ../shared):

    .venv/bin/python scripts/bench_backend.py [--runs N]

`--runs N` caps every measurement's repetitions at N (the smoke test uses 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emulators import serving
from kfp_emulator import STEPS, KfpEmulator, Snapshot, write_package
from kubeflow_gateway import KubeflowGateway
from s3_support import (
    ACCESS_KEY,
    SECRET_KEY,
    kserve_initializer,
    kserve_initializer_env,
    s3_server,
    seldon_initializer,
    upload_like_the_launcher,
)
from serving_support import make_tiny_model

from hello_kubeflow.deploy.model_manifests import (
    ModelDeployment,
    manifest,
    seldon_storage_secret,
    storage_credentials,
)
from hello_kubeflow.gateway.endpoints import Auth
from hello_kubeflow.gateway.login import dex_login
from hello_kubeflow.kfp.remote import KfpSession, Patience, connect
from hello_kubeflow.kfp.runs import (
    _steps,
    ensure_experiment,
    follow_run,
    start_run,
    upload_pipeline,
)
from hello_kubeflow.query.client import query_digit
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import Settings

MNIST = Path(
    os.environ.get("HK_TEST_MNIST_DIR", Path(__file__).resolve().parents[2] / "shared/data/mnist")
)
MODEL_URI = "minio://mlpipeline/v2/artifacts/hello-kubeflow-mnist/0b6f1c2e/train/8d1f/model"
Row = tuple[str, int, float, float]


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, max) seconds of `repeat` runs of `work`."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def bench_polls(root: Path, cap: int) -> list[Row]:
    rows: list[Row] = []
    emulator = KfpEmulator()
    emulator.script = [Snapshot("RUNNING", dict.fromkeys(STEPS, "Running"))]
    package = write_package(root / "pipeline.yaml")
    with serving(emulator.handler) as url:
        session = connect(url, Auth(), patience=Patience(retry_initial_wait=0.01))
        ref = upload_pipeline(session, package, "hello-kubeflow-mnist")
        experiment = ensure_experiment(session, "bench")
        run_id = start_run(
            session, experiment_id=experiment, pipeline=ref, run_name="b", parameters={}
        )

        def poll() -> object:
            return _steps(session.client.get_run(run_id), STEPS)

        rows.append(
            (
                "one poll: get_run (13 Argo nodes as tasks) + step states",
                min(100, cap),
                *timed(poll, min(100, cap)),
            )
        )
        body = json.dumps(emulator._render_run(run_id, emulator.script[0]))
        generated = session.client._run_api.api_client

        class Answer:
            data = body

        def client_side() -> object:
            return _steps(generated.deserialize(Answer(), "V2beta1Run"), STEPS)

        rows.append(
            (
                "  of which the client: parse the answer + step states",
                min(1000, cap),
                *timed(client_side, min(1000, cap)),
            )
        )

        for interval in (0.5, 5.0):
            trials = min(12 if interval < 1 else 6, cap)
            delays = [_delay(emulator, session, run_id, interval) for _ in range(trials)]
            rows.append(
                (
                    f"step state change -> reported, polling every {interval:g} s",
                    trials,
                    statistics.median(delays),
                    max(delays),
                )
            )
    return rows


def _delay(emulator: KfpEmulator, session: KfpSession, run_id: str, interval: float) -> float:
    """Seconds from the server showing a step's new state to `follow_run` reporting it."""
    emulator.script = [Snapshot("RUNNING", {"load-data": "Running"})]
    emulator.runs[run_id]["polls"] = 0
    changed: dict[str, float] = {}
    printed: dict[str, float] = {}

    def flip() -> None:
        time.sleep(random.uniform(0.2, 0.2 + interval))
        changed["at"] = time.perf_counter()
        emulator.script = [Snapshot("SUCCEEDED", dict.fromkeys(STEPS, "Succeeded"))]

    def on_step(name: str, state: str) -> None:
        if name == "train model" and "at" not in printed:
            printed["at"] = time.perf_counter()

    flipper = threading.Thread(target=flip)
    flipper.start()
    session.patience = Patience(poll_interval=interval, retry_initial_wait=0.01)
    follow_run(session, run_id, timeout=60, steps=STEPS, on_step=on_step)
    flipper.join()
    return printed["at"] - changed["at"]


def bench_login(cap: int) -> list[Row]:
    gateway = KubeflowGateway()
    with gateway.serve() as url:
        trips = dex_login(url, "user@example.com", "12341234").round_trips
        runs = min(20, cap)
        median, worst = timed(lambda: dex_login(url, "user@example.com", "12341234"), runs)
    return [(f"Dex + oauth2-proxy login ({trips} HTTP round trips)", runs, median, worst)]


def bench_handover(root: Path, cap: int) -> list[Row]:
    rows: list[Row] = []
    model = make_tiny_model(MNIST, root / "model")
    size = sum(p.stat().st_size for p in model.iterdir())
    files = len(list(model.iterdir()))
    deployment = dict(
        name="mnist-classifier",
        namespace="kubeflow-user-example-com",
        image="localhost:5000/hello-kubeflow@sha256:" + "ab" * 32,
        model_uri=MODEL_URI,
    )
    with s3_server() as endpoint:
        rows.append(
            (
                f"launcher-style upload of the model ({size / 1e6:.1f} MB, {files} files)",
                min(5, cap),
                *timed(lambda: upload_like_the_launcher(endpoint, model, MODEL_URI), min(5, cap)),
            )
        )
        service = manifest(ModelDeployment(serving="kserve", **deployment))  # type: ignore[arg-type]
        uri = next(
            e["value"]
            for e in service["spec"]["predictor"]["containers"][0]["env"]
            if e["name"] == "STORAGE_URI"
        )
        secret, _ = storage_credentials("ns", ACCESS_KEY, SECRET_KEY, endpoint=endpoint)
        env = kserve_initializer_env(secret)
        counter = iter(range(100))
        rows.append(
            (
                "KServe storage initializer download (kserve_storage 0.20.0, new process)",
                min(3, cap),
                *timed(
                    lambda: kserve_initializer(uri, root / f"k{next(counter)}", env), min(3, cap)
                ),
            )
        )
        graph = manifest(ModelDeployment(serving="seldon", **deployment))["spec"]["predictors"][0][
            "graph"
        ]  # type: ignore[arg-type]
        rclone_secret = seldon_storage_secret("ns", ACCESS_KEY, SECRET_KEY, endpoint=endpoint)
        rows.append(
            (
                "Seldon storage initializer download (rclone copy, new process)",
                min(3, cap),
                *timed(
                    lambda: seldon_initializer(
                        graph["modelUri"], root / f"s{next(counter)}", rclone_secret
                    ),
                    min(3, cap),
                ),
            )
        )

        def first_answer() -> None:
            with running_server(
                Settings(serve_port=0, serve_host="127.0.0.1"), root / "k0"
            ) as server:
                query_digit(Settings(query_url=server.url, mnist_dir=MNIST), index=0, protocol="v2")

        rows.append(
            (
                "server start on the download + first answer (V2)",
                min(3, cap),
                *timed(first_answer, min(3, cap)),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=10**6, help="cap on each measurement's runs (default: none)"
    )
    cap = parser.parse_args().runs
    if cap < 1:
        parser.error(f"--runs {cap}: expected at least 1 run")
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = bench_polls(root, cap) + bench_login(cap) + bench_handover(root, cap)
    print("| what | runs | median ms | max ms |")
    print("|---|---|---|---|")
    for what, runs, median, worst in rows:
        print(f"| {what} | {runs} | {median * 1000:.1f} | {worst * 1000:.1f} |")


if __name__ == "__main__":
    main()
