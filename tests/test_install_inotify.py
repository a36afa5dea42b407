"""The inotify limits of kind and minikube nodes, checked before `inv setup` applies anything.

The kernel's values are read from a folder standing in for /proc/sys, never
from this machine's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from crd_schemas import UPSTREAM
from emulators import RunningCluster, write_kubeconfig

from hello_kubeflow.errors import PrerequisiteError
from hello_kubeflow.install.inotify import LIMITS, check_inotify, proc_reader
from hello_kubeflow.install.install import install
from hello_kubeflow.install.prereqs import check_prerequisites, failed
from hello_kubeflow.kube.client import KubeTarget

LOCAL_ENGINE = "unix:///var/run/docker.sock"
LOW = {"fs.inotify.max_user_instances": 128, "fs.inotify.max_user_watches": 65536}


def fake_proc(root: Path, values: dict[str, int]) -> Path:
    """A /proc/sys with the given `fs.inotify.*` values."""
    for key, value in values.items():
        path = root / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return root


def target(context: str, server: str = "https://127.0.0.1:40123") -> KubeTarget:
    return KubeTarget("kubeconfig", context, context, server, context)


@pytest.fixture
def cluster() -> Iterator[RunningCluster]:
    with RunningCluster() as emulator:
        yield emulator


def test_a_kind_cluster_on_a_kernel_with_default_limits_is_refused_with_the_sysctl_to_run(
    tmp_path: Path,
) -> None:
    found = check_inotify(
        target("kind-kubeflow"), LOCAL_ENGINE, proc_reader(fake_proc(tmp_path, LOW))
    )

    assert found.applies and not found.ok and found.readable
    assert "fs.inotify.max_user_instances 128 < 2280" in found.detail
    assert "fs.inotify.max_user_watches 65536 < 1255360" in found.detail
    assert "too many open files" in found.detail
    assert "sudo sysctl -w fs.inotify.max_user_instances=2280" in found.fix
    assert "fs.inotify.max_user_watches=1255360" in found.fix
    assert "/etc/sysctl.d/" in found.fix


def test_limits_at_the_manifests_values_pass(tmp_path: Path) -> None:
    found = check_inotify(
        target("minikube"), LOCAL_ENGINE, proc_reader(fake_proc(tmp_path, LIMITS))
    )

    assert found.ok
    assert "fs.inotify.max_user_watches=1255360" in found.detail


def test_only_the_low_limit_is_named(tmp_path: Path) -> None:
    values = {**LIMITS, "fs.inotify.max_user_instances": 512}
    found = check_inotify(target("kind-x"), LOCAL_ENGINE, proc_reader(fake_proc(tmp_path, values)))

    assert not found.ok
    assert "max_user_instances 512 < 2280" in found.detail
    assert "max_user_watches" not in found.detail.split(":")[0]


def test_another_cluster_is_not_checked(tmp_path: Path) -> None:
    found = check_inotify(
        target("prod-eks", "https://abc.eks.amazonaws.com"),
        LOCAL_ENGINE,
        proc_reader(fake_proc(tmp_path, LOW)),
    )

    assert not found.applies and found.ok


@pytest.mark.parametrize(
    ("context", "server", "engine", "where"),
    [
        ("kind-kubeflow", "https://127.0.0.1:40123", "ssh://me@builder", "docker exec kubeflow-"),
        (
            "kind-kubeflow",
            "https://127.0.0.1:40123",
            "tcp://10.0.0.5:2376",
            "docker exec kubeflow-",
        ),
        ("minikube", "https://192.168.49.2:8443", LOCAL_ENGINE, "minikube ssh -p minikube"),
    ],
)
def test_a_node_kernel_elsewhere_is_not_guessed_but_says_where_to_read_it(
    tmp_path: Path, context: str, server: str, engine: str, where: str
) -> None:
    """A remote engine or a minikube VM: this machine's limits say nothing about the node."""
    found = check_inotify(target(context, server), engine, proc_reader(fake_proc(tmp_path, LOW)))

    assert found.applies and not found.ok and not found.readable
    assert "cannot be read from here" in found.detail
    assert where in found.fix
    assert "fs.inotify.max_user_instances=2280" in found.fix


def test_without_proc_sys_it_says_so_instead_of_passing(tmp_path: Path) -> None:
    found = check_inotify(target("kind-kubeflow"), LOCAL_ENGINE, proc_reader(tmp_path / "none"))

    assert not found.ok and not found.readable
    assert "no /proc/sys/fs/inotify" in found.detail


def test_setup_checks_list_the_limits_of_a_kind_context_as_a_blocking_failure(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kind.kubeconfig", cluster.url, context="kind-hello")
    settings = cluster.settings(tmp_path).replace(kubeconfig=kubeconfig)

    checks = check_prerequisites(
        settings,
        needs_docker=False,
        patience=1.0,
        read_sysctl=proc_reader(fake_proc(tmp_path, LOW)),
    )

    [blocking] = failed(checks)
    assert blocking.name == "inotify limits"
    assert blocking.line().startswith("[FAIL] inotify limits: fs.inotify.max_user_instances 128")


@pytest.mark.skipif(not (UPSTREAM / "README.md").is_file(), reason=f"no manifests at {UPSTREAM}")
def test_inv_setup_stops_before_applying_anything_on_a_kind_node_with_low_limits(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kind.kubeconfig", cluster.url, context="kind-hello")
    settings = cluster.settings(
        tmp_path, kubeconfig=kubeconfig, pipeline_image="x", manifests_dir=UPSTREAM
    )

    with pytest.raises(PrerequisiteError, match=r"not ready for inv setup:\n.*inotify limits"):
        install(settings, read_sysctl=proc_reader(fake_proc(tmp_path, LOW)))

    assert not cluster.requests(lambda r: r.method in ("PATCH", "POST", "PUT"))
