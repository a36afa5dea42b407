"""inv setup in cluster mode: the plan, --dry-run, a whole install (stand-in kubectl, emulator)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulators import RunningCluster
from kube_support import StandInKubectl, node, pod

from hello_kubeflow.errors import ApplyError, PrerequisiteError
from hello_kubeflow.kube.install import install, make_plan
from hello_kubeflow.kube.kubectl import ApplyBackoff, Kubectl
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
FAST = ApplyBackoff(initial=0.01, maximum=0.05)
KFP = "github.com/kubeflow/pipelines/manifests/kustomize"


@pytest.fixture
def cluster() -> Iterator[RunningCluster]:
    with RunningCluster() as emulator:
        yield emulator


@pytest.fixture
def kubectl_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInKubectl:
    return StandInKubectl(tmp_path / "tools", monkeypatch)


def sources(settings: Settings) -> list[str]:
    return [step.source for step in make_plan(settings, rbac_dir=Path("/nowhere")).steps]


# ---- the plan


def test_the_pipelines_profile_installs_kfp_then_seldon_at_the_pinned_versions() -> None:
    assert sources(Settings(kfp_version="2.14.3", seldon_version="1.17.1")) == [
        f"{KFP}/cluster-scoped-resources?ref=2.14.3",
        f"{KFP}/env/dev?ref=2.14.3",
        "github.com/SeldonIO/seldon-core/operator/config/lite?ref=v1.17.1",
    ]


def test_kserve_comes_with_cert_manager_and_raw_deployment_mode() -> None:
    plan = make_plan(Settings(serving="kserve", kserve_version="0.15.2"), rbac_dir=Path("/nowhere"))

    assert [s.source for s in plan.steps][2:5] == [
        "github.com/kubeflow/manifests/common/cert-manager/base?ref=v1.10.2",
        "github.com/kserve/kserve/config/default?ref=v0.15.2",
        "github.com/kserve/kserve/config/clusterresources?ref=v0.15.2",
    ]
    assert "RawDeployment" in plan.steps[5].inline
    assert plan.namespaces == ("kubeflow", "cert-manager", "kserve")


def test_the_full_profile_is_the_kubeflow_example_and_waits_for_all_namespaces() -> None:
    plan = make_plan(
        Settings(profile="full", kubeflow_version="v1.10.2"), rbac_dir=Path("/nowhere")
    )

    assert [s.source for s in plan.steps] == ["github.com/kubeflow/manifests/example?ref=v1.10.2"]
    assert plan.serving == "kserve" and plan.namespaces == ()


def test_a_local_manifests_dir_replaces_every_remote_source(tmp_path: Path) -> None:
    assert sources(Settings(manifests_dir=tmp_path)) == [
        str(tmp_path / "pipelines/manifests/kustomize/cluster-scoped-resources"),
        str(tmp_path / "pipelines/manifests/kustomize/env/dev"),
        str(tmp_path / "seldon-core/operator/config/lite"),
    ]


def test_the_projects_rbac_manifests_are_applied_last(tmp_path: Path) -> None:
    (tmp_path / "pipeline-runner.yaml").write_text("kind: Role\n")

    plan = make_plan(Settings(), rbac_dir=tmp_path)

    assert plan.steps[-1].source == f"files:{tmp_path}"


def test_inv_setup_dry_run_prints_the_plan_and_runs_nothing(
    cluster: RunningCluster, kubectl_on_path: StandInKubectl, tmp_path: Path
) -> None:
    env = {
        "PATH": str(kubectl_on_path.bin_dir),
        "HOME": str(tmp_path),
        "KUBECONFIG": str(cluster.kubeconfig(tmp_path)),
        "HK_KFP_VERSION": "2.14.3",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "-r",
            str(REPO),
            "setup",
            "--mode",
            "cluster",
            "--dry-run",
        ],
        cwd=tmp_path,  # no .env here
        env={**env, "SYSTEMROOT": os.environ.get("SYSTEMROOT", "")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Plan for profile 'pipelines' (serving: seldon):" in out
    assert f"target: context 'emulated' (cluster 'emulator' at {cluster.url})" in out
    assert "versions: Kubeflow Pipelines 2.14.3, Seldon Core v1.17.1" in out
    assert f"$ kubectl kustomize '{KFP}/cluster-scoped-resources?ref=2.14.3' | kubectl" in out
    assert "apply --server-side --force-conflicts --field-manager=hello-kubeflow" in out
    assert "wait until every pod in kubeflow, seldon-system is ready" in out
    assert kubectl_on_path.calls() == []  # nothing was run, so nothing changed
    assert cluster.requests() == []  # and the cluster was not even asked


# ---- a whole install


def test_install_checks_applies_each_step_then_waits_for_the_pods(
    cluster: RunningCluster, kubectl_on_path: StandInKubectl, tmp_path: Path
) -> None:
    cluster.put_object("v1/nodes", None, "worker", node("worker", "8", "16Gi"))
    cluster.add(pod("kubeflow", "ml-pipeline", phase="Running", ready=True))
    cluster.add(pod("seldon-system", "seldon-controller-manager", phase="Running", ready=True))
    rbac = tmp_path / "rbac"
    rbac.mkdir()
    (rbac / "pipeline-runner.yaml").write_text("kind: Role\n")
    kubectl_on_path.behave(
        apply_failures=2, stderr='failed calling webhook "x": connection refused'
    )
    settings = cluster.settings(tmp_path, pipeline_image="registry.example/hk@sha256:" + "0" * 64)

    lines = install(
        settings, kubectl=Kubectl.from_settings(settings), rbac_dir=rbac, backoff=FAST, settle=0
    )

    assert kubectl_on_path.builds() == [
        f"{KFP}/cluster-scoped-resources?ref=2.14.3",
        f"{KFP}/env/dev?ref=2.14.3",
        "github.com/SeldonIO/seldon-core/operator/config/lite?ref=v1.17.1",
    ]
    assert len(kubectl_on_path.applies()) == 4 + 2  # four steps, two webhook retries
    assert kubectl_on_path.applies()[-1][-3:] == ["-f", str(rbac), "--recursive"]
    assert lines[0].startswith("[ok]   kubectl")
    assert "applied Seldon Core v1.17.1 operator: 2 objects" in lines
    assert "2/2 pods ready (kubeflow 1/1, seldon-system 1/1)" in lines[-2]
    assert lines[-1].startswith("Next: inv build-push")


def test_install_stops_before_applying_when_a_prerequisite_fails(
    kubectl_on_path: StandInKubectl, tmp_path: Path
) -> None:
    settings = Settings(kubeconfig=tmp_path / "missing", pipeline_image="x")

    with pytest.raises(PrerequisiteError, match="no kubeconfig found"):
        install(settings, kubectl=Kubectl.from_settings(settings), backoff=FAST)

    assert kubectl_on_path.applies() == []


def test_install_reports_a_permanent_apply_error_with_kubectls_message(
    cluster: RunningCluster, kubectl_on_path: StandInKubectl, tmp_path: Path
) -> None:
    cluster.put_object("v1/nodes", None, "worker", node("worker", "8", "16Gi"))
    kubectl_on_path.behave(apply_failures=1, stderr='error: unable to decode "STDIN": bad yaml')
    settings = cluster.settings(tmp_path, pipeline_image="x")

    with pytest.raises(ApplyError, match='unable to decode "STDIN": bad yaml'):
        install(settings, kubectl=Kubectl.from_settings(settings), backoff=FAST)

    assert len(kubectl_on_path.applies()) == 1


def test_the_kserve_mode_override_does_not_take_the_upstream_configmap_from_its_owner(
    cluster: RunningCluster, kubectl_on_path: StandInKubectl, tmp_path: Path
) -> None:
    """One key applied by the manager that applied KServe's ConfigMap would drop the others."""
    cluster.put_object("v1/nodes", None, "worker", node("worker", "8", "16Gi"))
    for namespace in ("kubeflow", "cert-manager", "kserve"):
        cluster.add(pod(namespace, "controller", phase="Running", ready=True))
    settings = cluster.settings(tmp_path, serving="kserve", pipeline_image="x")

    install(settings, kubectl=Kubectl.from_settings(settings), rbac_dir=tmp_path, settle=0)

    managers = [
        next(a for a in args if a.startswith("--field-manager="))
        for args in kubectl_on_path.applies()
    ]
    assert managers[:-1] == ["--field-manager=hello-kubeflow"] * (len(managers) - 1)
    assert managers[-1] != "--field-manager=hello-kubeflow"
