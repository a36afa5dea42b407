"""Benchmark wait_for_pods (list + watch) against 2 s polling, on kmock's Kubernetes emulator.

The emulator runs in its own process (real HTTP on 127.0.0.1); this process plays
the kubelet (PATCHes pod status through the official client) and runs the waiter.
Measured:

1. latency from the last pod becoming ready to the wait returning,
2. latency from a pod entering ImagePullBackOff to the wait failing,
3. API requests (lists + watches) while 200 pods roll out over ~20 s.

Usage: python scripts/bench_wait.py [--runs 10] [--pods 200]
Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from emulators import RunningCluster, is_pod_list, is_pod_watch, settings_api  # noqa: E402
from kube_support import pod, ready_status, waiting  # noqa: E402
from kubernetes import client  # noqa: E402

from hello_kubeflow.errors import PodFailedError  # noqa: E402
from hello_kubeflow.kube.wait import wait_for_pods  # noqa: E402
from hello_kubeflow.settings import Settings  # noqa: E402

POLL_INTERVAL = 2.0


def _serve(conn: Connection) -> None:
    """Child process: the emulator, plus /_stats counting pod lists and watches."""
    with RunningCluster() as cluster:

        def stats() -> dict[str, int]:
            requests = list(cluster.emulator)
            return {
                "lists": sum(1 for r in requests if is_pod_list(r)),
                "watches": sum(1 for r in requests if is_pod_watch(r)),
            }

        cluster.call(lambda: cluster.emulator["get /_stats"] << (lambda: stats()))
        conn.send(cluster.url)
        conn.recv()  # until told to stop


class Emulator:
    """The emulator process, and a client to play the kubelet with."""

    def __enter__(self) -> Emulator:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        self.url = str(self._conn.recv())
        configuration = client.Configuration()
        configuration.host = self.url
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self._dir = tempfile.TemporaryDirectory()
        kubeconfig = Path(self._dir.name) / "kubeconfig"
        kubeconfig.write_text(
            f"clusters: [{{name: e, cluster: {{server: '{self.url}'}}}}]\n"
            "contexts: [{name: e, context: {cluster: e, user: u}}]\nusers: [{name: u, user: {}}]\n"
            "current-context: e\n"
        )
        self.settings = Settings(kubeconfig=kubeconfig, kube_request_timeout=10.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(10)
        self._dir.cleanup()

    def stats(self) -> dict[str, int]:
        response = self.api.rest_client.GET(f"{self.url}/_stats", _request_timeout=(5, 10))
        return dict(json.loads(response.data))

    def add(self, name: str, **fields: Any) -> None:
        body = pod("bench", name, **fields)
        self.core.create_namespaced_pod("bench", body, _preload_content=False)

    def set(self, name: str, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(
            name, "bench", {"status": status}, _preload_content=False
        )


def poll_until_ready(env: Emulator, timeout: float = 120.0) -> None:
    """The baseline: list every POLL_INTERVAL seconds until every pod is ready."""
    core = client.CoreV1Api(env.api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = json.loads(core.list_namespaced_pod("bench", _preload_content=False).data)["items"]
        if items and all(
            any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in i["status"]["conditions"]
            )
            for i in items
        ):
            return
        time.sleep(POLL_INTERVAL)
    raise TimeoutError("pods not ready")


def watch_until_ready(env: Emulator) -> None:
    grace = env.settings.wait_crash_grace
    wait_for_pods(settings_api(env.settings), ["bench"], 120.0, grace, progress_interval=600.0)


def last_ready_latency(
    waiter: Callable[[Emulator], None], runs: int, pods: int = 10
) -> list[float]:
    """Seconds from the last pod's ready PATCH being sent to the waiter returning."""
    latencies = []
    for run in range(runs):
        with Emulator() as env:
            for i in range(pods):
                env.add(f"p{i}", statuses=[waiting("main", "ContainerCreating")])
            sent: list[float] = []

            def kubelet(env: Emulator = env, sent: list[float] = sent, run: int = run) -> None:
                time.sleep(0.5 + 0.37 * run)  # spread the last change across the poll cycle
                for i in range(pods):
                    if i == pods - 1:
                        sent.append(time.monotonic())
                    env.set(f"p{i}", ready_status())

            thread = threading.Thread(target=kubelet)
            thread.start()
            waiter(env)
            returned = time.monotonic()
            thread.join()
            latencies.append(returned - sent[0])
    return latencies


def image_pull_latency(runs: int) -> list[float]:
    """Seconds from a pod's ImagePullBackOff PATCH being sent to the wait failing."""
    latencies = []
    for _ in range(runs):
        with Emulator() as env:
            for i in range(10):
                env.add(f"p{i}", phase="Running", ready=i != 3)
            sent: list[float] = []

            def kubelet(env: Emulator = env, sent: list[float] = sent) -> None:
                time.sleep(0.5)
                sent.append(time.monotonic())
                env.set(
                    "p3",
                    {
                        "phase": "Pending",
                        "containerStatuses": [waiting("main", "ImagePullBackOff", "no")],
                    },
                )

            thread = threading.Thread(target=kubelet)
            thread.start()
            try:
                watch_until_ready(env)
            except PodFailedError:
                latencies.append(time.monotonic() - sent[0])
            thread.join()
    return latencies


def rollout_requests(
    waiter: Callable[[Emulator], None], pods: int, seconds: float
) -> tuple[int, int, float]:
    """(lists, watches, seconds) while `pods` become ready evenly over `seconds`."""
    with Emulator() as env:
        for i in range(pods):
            env.add(f"p{i}", statuses=[waiting("main", "ContainerCreating")])
        before = env.stats()

        def kubelet() -> None:
            for i in range(pods):
                time.sleep(seconds / pods)
                env.set(f"p{i}", ready_status())

        thread = threading.Thread(target=kubelet)
        started = time.monotonic()
        thread.start()
        waiter(env)
        took = time.monotonic() - started
        thread.join()
        after = env.stats()
    return after["lists"] - before["lists"], after["watches"] - before["watches"], took


def _summary(values: list[float]) -> str:
    return (
        f"mean {statistics.mean(values):.3f} s, median {statistics.median(values):.3f} s, "
        f"max {max(values):.3f} s (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="repetitions of the latency runs")
    parser.add_argument("--pods", type=int, default=200, help="pods in the rollout")
    parser.add_argument("--rollout-seconds", type=float, default=20.0, help="rollout length")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    watch_ready = last_ready_latency(watch_until_ready, args.runs)
    poll_ready = last_ready_latency(poll_until_ready, args.runs)
    pull = image_pull_latency(args.runs)
    w_lists, w_watches, w_took = rollout_requests(
        watch_until_ready, args.pods, args.rollout_seconds
    )
    p_lists, p_watches, p_took = rollout_requests(poll_until_ready, args.pods, args.rollout_seconds)

    print("## Cluster wait\n")
    print("| measure | list + watch (`wait_for_pods`) | 2 s polling |")
    print("|---|---|---|")
    print(f"| last pod ready -> wait returns | {_summary(watch_ready)} | {_summary(poll_ready)} |")
    print(f"| ImagePullBackOff -> wait fails | {_summary(pull)} | only at the timeout |")
    print(
        f"| API requests, {args.pods} pods ready over {args.rollout_seconds:.0f} s | "
        f"{w_lists} lists + {w_watches} watches ({w_took:.1f} s) | "
        f"{p_lists} lists + {p_watches} watches ({p_took:.1f} s) |"
    )


if __name__ == "__main__":
    main()
