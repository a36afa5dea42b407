"""The prerequisites check against the emulated API server (no kubectl needed)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulators import RunningCluster
from kube_support import node

from hello_kubeflow.install.prereqs import Check, check_prerequisites, failed
from hello_kubeflow.settings import Settings


@pytest.fixture
def cluster() -> Iterator[RunningCluster]:
    with RunningCluster() as emulator:
        yield emulator


def check(settings: Settings) -> dict[str, Check]:
    checks = check_prerequisites(settings, needs_docker=False, patience=1.0)
    return {c.name: c for c in checks}


def test_a_ready_cluster_passes_every_check_and_names_what_it_found(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    cluster.put_object("v1/nodes", None, "worker", node("worker", "8", "16331528Ki"))

    checks = check(cluster.settings(tmp_path))

    assert all(c.ok for c in checks.values()), [c.line() for c in checks.values()]
    assert list(checks) == ["kubeconfig", "API server", "capacity"]  # no kubectl, no kustomize
    assert (
        f"context 'emulated' (cluster 'emulator' at {cluster.url})" in checks["kubeconfig"].detail
    )
    assert "Kubernetes v1.26.4+k3s1" in checks["API server"].detail
    assert "8 CPU and 15.6 GiB allocatable" in checks["capacity"].detail


def test_docker_tls_variables_naming_no_certificates_do_not_break_the_cluster_checks(
    cluster: RunningCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stale DOCKER_TLS_VERIFY/DOCKER_CERT_PATH made the inotify check raise docker's error."""
    cluster.put_object("v1/nodes", None, "worker", node("worker", "8", "16331528Ki"))
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "no-certs"))

    checks = check(cluster.settings(tmp_path))

    assert all(c.ok for c in checks.values()), [c.line() for c in checks.values()]


def test_too_little_capacity_is_a_warning_with_the_numbers(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    cluster.put_object("v1/nodes", None, "small", node("small", "2", "4Gi"))
    cluster.put_object(
        "v1/nodes", None, "cordoned", node("cordoned", "64", "256Gi", unschedulable=True)
    )

    checks = check(cluster.settings(tmp_path, profile="full"))

    capacity = checks["capacity"]
    assert not capacity.ok and not capacity.blocking
    assert "1 schedulable node(s), 2 CPU and 4.0 GiB" in capacity.detail
    assert "wants 8 CPU and 16 GiB" in capacity.detail
    assert capacity.line().startswith("[warn] capacity")
    assert not failed(list(checks.values()))


def test_no_kubeconfig_fails_saying_how_to_get_a_cluster(tmp_path: Path) -> None:
    checks = check(Settings(kubeconfig=tmp_path / "missing"))

    assert not checks["kubeconfig"].ok
    assert "kind create cluster" in checks["kubeconfig"].detail
    assert "API server" not in checks


def test_an_unknown_context_fails_listing_the_known_ones(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    checks = check(cluster.settings(tmp_path, kube_context="minikube"))

    assert not checks["kubeconfig"].ok
    assert "context 'minikube' is not in the kubeconfig" in checks["kubeconfig"].detail
    assert "contexts: emulated" in checks["kubeconfig"].detail


def test_an_unreachable_api_server_fails_with_the_server_and_a_fix(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
        "current-context: x\n"
    )

    checks = check(Settings(kubeconfig=kubeconfig, kube_request_timeout=1.0))

    api = checks["API server"]
    assert not api.ok and api.blocking
    assert f"cannot reach http://127.0.0.1:{port}" in api.detail
    assert "minikube start" in api.line()
