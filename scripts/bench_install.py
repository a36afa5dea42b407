"""Benchmark `inv setup --mode cluster` against the API server emulator, from upstream's renders.

Measured (the emulator serves on 127.0.0.1 in this process, over real HTTP):

1. objects applied per profile, and the install's own time (apply + wait),
   every workload given a Ready pod as it is applied;
2. in the KFP scenario (tests/test_kube_wait_crashes.py: storage comes up,
   dependents crash-loop until then), the time from the last pod becoming
   ready to `wait_for_pods` returning, with the install's settle time;
3. the time from a pod that keeps crashing after its dependencies are up
   (its restart after that) to the wait failing.

Usage: HK_TEST_UPSTREAM_DIR=../shared/upstream python scripts/bench_install.py
           [--runs 3] [--profile pipelines:seldon ...]   (default: the three profiles)
Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from apiserver import ApiServer  # noqa: E402
from crd_schemas import UPSTREAM  # noqa: E402
from emulators import RunningCluster, settings_api  # noqa: E402
from kube_support import node  # noqa: E402
from test_install_install import IMAGE, kubelet  # noqa: E402
from test_kube_wait_crashes import KfpKubelet  # noqa: E402

from hello_kubeflow.errors import PodFailedError  # noqa: E402
from hello_kubeflow.install.install import SETTLE_SECONDS, install, make_plan  # noqa: E402
from hello_kubeflow.kube.wait import wait_for_pods  # noqa: E402
from hello_kubeflow.retry import Backoff  # noqa: E402

PROFILES = (("pipelines", "seldon"), ("pipelines", "kserve"), ("full", "kserve"))


def _install(profile: str, serving: str) -> tuple[int, float]:
    server = ApiServer()
    server.controllers.append(kubelet)
    with RunningCluster(server) as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.put_object("v1/nodes", None, "worker", node("worker", "8", "16Gi"))
        settings = cluster.settings(
            Path(tmp),
            manifests_dir=UPSTREAM,
            pipeline_image=IMAGE,
            profile=profile,
            serving=serving,
        )
        objects = make_plan(settings).objects
        started = time.perf_counter()
        install(settings, backoff=Backoff(0.5, 5.0), settle=0)
        return objects, time.perf_counter() - started


def _kfp(broken: str, settle: float) -> float:
    with RunningCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        settings = cluster.settings(Path(tmp), wait_crash_grace=600.0)
        player = KfpKubelet(cluster, storage_after=6, broken=broken)
        player.start_pods()
        player.start()
        try:
            wait_for_pods(
                settings_api(settings),
                ["kubeflow"],
                120,
                settings.wait_crash_grace,
                backoff=Backoff(0.05, 0.2),
                require_pods=True,
                settle=settle,
            )
            return time.monotonic() - player.last_ready
        except PodFailedError:
            return time.monotonic() - player.last_ready
        finally:
            player.stop.set()
            player.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each KFP scenario")
    parser.add_argument(
        "--profile",
        action="append",
        choices=[f"{profile}:{serving}" for profile, serving in PROFILES],
        help="a profile to install (repeatable; default: all)",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: expected at least 1 run")
    profiles = [tuple(p.split(":")) for p in args.profile] if args.profile else PROFILES
    logging.basicConfig(level=logging.WARNING)
    load = os.getloadavg()[0]
    print(f"Machine: 2 cores, shared; load average {load:.1f} when the run started.\n")
    print("| profile | objects applied | install (apply + wait) |")
    print("|---|---|---|")
    for profile, serving in profiles:
        objects, seconds = _install(profile, serving)
        print(f"| {profile} ({serving}) | {objects} | {seconds:.1f} s |")
    ready = [_kfp("", SETTLE_SECONDS) for _ in range(args.runs)]
    crash = [_kfp("ml-pipeline", 0.0) for _ in range(args.runs)]
    print()
    print("| KFP scenario | mean | max | n |")
    print("|---|---|---|---|")
    print(
        f"| last pod ready -> wait returns (settle {SETTLE_SECONDS:.0f} s) | "
        f"{statistics.mean(ready):.2f} s | {max(ready):.2f} s | {len(ready)} |"
    )
    print(
        f"| dependencies up -> persistent crash fails the wait | "
        f"{statistics.mean(crash):.2f} s | {max(crash):.2f} s | {len(crash)} |"
    )
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
