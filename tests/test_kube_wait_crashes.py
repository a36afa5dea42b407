"""Crash loops during an install: normal while dependencies start, fatal when they persist.

The scenario follows a real Kubeflow Pipelines install: the Deployments of
upstream's rendered `env/platform-agnostic` (kubeflow/pipelines 2.17.0), whose
API server and metadata service exit until MySQL and the object store
(SeaweedFS) answer, and are restarted by the kubelet with a growing back-off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clock_support import VirtualClock
from crd_schemas import UPSTREAM, upstream_documents
from emulators import RunningCluster, settings_api
from kube_support import pod, ready_status, status, waiting

from hello_kubeflow.errors import PodFailedError, WaitTimeoutError
from hello_kubeflow.kube.wait import REAL_TIME, Clock, wait_for_pods
from hello_kubeflow.retry import Backoff
from hello_kubeflow.settings import Settings

FAST = Backoff(initial=0.05, maximum=0.2)
KFP = "kubeflow-pipelines-2.17.0/env-platform-agnostic.yaml"
STORAGE = ("mysql", "seaweedfs")
# What waits on MySQL or the object store, and so restarts until they are up (their
# containers' start-up: the API server and the metadata gRPC server open MySQL first).
DEPENDENT = ("ml-pipeline", "metadata-grpc-deployment", "cache-server", "ml-pipeline-ui")
TICK = 0.15
CRASH_LOG = (
    "F1130 main.go:88] Failed to initialize the database: "
    "dial tcp mysql:3306: connect: connection refused"
)


@pytest.fixture
def cluster() -> Iterator[RunningCluster]:
    with RunningCluster() as emulator:
        yield emulator


def kfp_deployments() -> list[tuple[str, tuple[str, ...]]]:
    """(name, containers) of each Deployment in KFP's rendered manifests."""
    if not (UPSTREAM / KFP).is_file():
        pytest.skip(f"upstream's rendered manifests are not at {UPSTREAM} (HK_TEST_UPSTREAM_DIR)")
    return [
        (
            d["metadata"]["name"],
            tuple(c["name"] for c in d["spec"]["template"]["spec"]["containers"]),
        )
        for d in upstream_documents(KFP)
        if d["kind"] == "Deployment"
    ]


class KfpKubelet(threading.Thread):
    """Plays the kubelet for KFP's pods: storage comes up, dependents crash until it has.

    Args:
        cluster: the emulator the pods live in.
        storage_after: ticks until MySQL and SeaweedFS are Ready.
        broken: a Deployment whose container keeps crashing even then.
    """

    def __init__(self, cluster: RunningCluster, storage_after: int, broken: str = "") -> None:
        super().__init__(daemon=True)
        self.cluster, self.storage_after, self.broken = cluster, storage_after, broken
        self.deployments = dict(kfp_deployments())
        self.stop = threading.Event()
        self.last_ready = 0.0
        self.restarts: dict[str, int] = {}

    def pod_name(self, deployment: str) -> str:
        return f"{deployment}-5d8f7b9c6-x2x9k"

    def start_pods(self) -> None:
        for name, containers in self.deployments.items():
            creating = [waiting(c, "ContainerCreating") for c in containers]
            self.cluster.add(
                pod(
                    "kubeflow",
                    self.pod_name(name),
                    containers=containers,
                    statuses=creating,
                    owner=("ReplicaSet", f"{name}-5d8f7b9c6"),
                )
            )

    def crash(self, name: str) -> None:
        containers = self.deployments[name]
        self.restarts[name] = self.restarts.get(name, 0) + 1
        statuses = [
            waiting(
                containers[0],
                "CrashLoopBackOff",
                "back-off 10s restarting failed container",
                self.restarts[name],
            ),
            *(
                {"name": c, "ready": True, "restartCount": 0, "state": {"running": {}}}
                for c in containers[1:]
            ),
        ]
        self.cluster.set_status(
            "kubeflow",
            self.pod_name(name),
            status(phase="Running", containers=containers, statuses=statuses),
        )

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(TICK):
            tick += 1
            storage_up = tick >= self.storage_after
            for name, containers in self.deployments.items():
                if name in STORAGE or name not in DEPENDENT:
                    if tick == (self.storage_after if name in STORAGE else 1):
                        self.cluster.set_status(
                            "kubeflow", self.pod_name(name), ready_status(containers)
                        )
                        self.last_ready = time.monotonic()
                elif name == self.broken or not storage_up:
                    self.crash(name)
                elif tick == self.storage_after + 2:
                    self.cluster.set_status(
                        "kubeflow", self.pod_name(name), ready_status(containers)
                    )
                    self.last_ready = time.monotonic()


def wait(cluster: RunningCluster, tmp_path: Path, clock: Clock = REAL_TIME, **changes: Any) -> Any:
    settings: Settings = cluster.settings(tmp_path, **changes)
    return wait_for_pods(
        settings_api(settings),
        ["kubeflow"],
        30.0,
        settings.wait_crash_grace,
        backoff=FAST,
        require_pods=True,
        clock=clock,
    )


def test_kfp_pods_restarting_while_mysql_and_seaweedfs_start_are_waited_for(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    kubelet = KfpKubelet(cluster, storage_after=8)
    kubelet.start_pods()
    kubelet.start()
    try:
        result = wait(cluster, tmp_path, wait_crash_grace=20.0)
    finally:
        kubelet.stop.set()
        kubelet.join(5)

    assert result.snapshot.ready == result.snapshot.total == len(kubelet.deployments) == 14
    assert min(kubelet.restarts[name] for name in DEPENDENT) >= 6  # they did crash-loop


def test_a_pod_still_restarting_once_its_dependencies_are_up_fails_with_its_last_logs(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    cluster.call(lambda: cluster.emulator[lambda r: r.subresource == "log"] << CRASH_LOG.encode())
    kubelet = KfpKubelet(cluster, storage_after=4, broken="ml-pipeline")
    kubelet.start_pods()
    kubelet.start()
    try:
        with pytest.raises(PodFailedError) as failed:
            wait(cluster, tmp_path, wait_crash_grace=20.0)
    finally:
        kubelet.stop.set()
        kubelet.join(5)

    message = str(failed.value)
    assert "pod kubeflow/ml-pipeline-5d8f7b9c6-x2x9k container 'ml-pipeline-api-server'" in message
    assert "again after every other pod was ready" in message
    assert (
        f"Last log lines of container 'ml-pipeline-api-server' (previous run):\n    {CRASH_LOG}"
        in message
    )
    logs = cluster.requests(lambda r: r.subresource == "log")
    assert logs and str(logs[-1].params.get("previous")).lower() == "true"


def test_a_crash_loop_fails_after_the_grace_period_while_another_pod_never_starts(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    cluster.add(pod("kubeflow", "mysql-0", statuses=[waiting("main", "ContainerCreating")]))
    crashing = [waiting("main", "CrashLoopBackOff", "back-off 10s", restarts=1)]
    cluster.add(pod("kubeflow", "ml-pipeline-0", phase="Running", statuses=crashing))
    clock = VirtualClock()

    with pytest.raises(PodFailedError, match=r"restarted 1 times over .*HK_WAIT_CRASH_GRACE=1\)"):
        wait(cluster, tmp_path, wait_crash_grace=1.0, clock=clock)

    assert 1.0 <= clock.now() < 30  # after the grace, long before the timeout


def test_without_a_crash_loop_a_pending_pod_is_a_timeout_not_a_failure(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    cluster.add(pod("kubeflow", "mysql-0", statuses=[waiting("main", "ContainerCreating")]))
    settings = cluster.settings(tmp_path, wait_crash_grace=0.5)

    with pytest.raises(WaitTimeoutError):
        wait_for_pods(
            settings_api(settings),
            ["kubeflow"],
            1.5,
            settings.wait_crash_grace,
            backoff=FAST,
            clock=VirtualClock(),
        )
