"""inv setup --mode cluster against the API server emulator, with upstream's rendered manifests.

The manifests are the shared copy in ../shared/upstream (HK_TEST_UPSTREAM_DIR);
the tests skip, saying so, when it is absent.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import ApiServer
from crd_schemas import UPSTREAM, upstream_documents
from emulators import RunningCluster, settings_api
from kmock._internal import enums
from kube_support import node

from hello_kubeflow.errors import ApplyError, ManifestError, PrerequisiteError
from hello_kubeflow.install.apply import Applier
from hello_kubeflow.install.install import RBAC_DIR, install, make_plan
from hello_kubeflow.retry import Backoff
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
FAST = Backoff(initial=0.05, maximum=0.2)
IMAGE = "registry.example/hk@sha256:" + "0" * 64
needs_upstream = pytest.mark.skipif(
    not (UPSTREAM / "README.md").is_file(),
    reason=f"upstream's rendered manifests are not at {UPSTREAM} (CI has them at "
    "../shared/upstream; or set HK_TEST_UPSTREAM_DIR)",
)
_WORKLOADS = {"deployments", "statefulsets", "daemonsets"}


def kubelet(emulator: Any, request: Any) -> None:
    """Plays the controllers and kubelet: each applied workload gets one Ready pod."""
    if request.action != enums.action.UPDATE or request.resource is None:
        return
    if request.resource.plural not in _WORKLOADS or not request.name:
        return
    from kmock import resource

    name = f"{request.name}-0"
    emulator.objects[resource("v1/pods"), request.namespace, name] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": request.namespace,
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": request.name, "controller": True, "uid": "u"}
            ],
        },
        "spec": {"containers": [{"name": "main"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0}],
        },
    }


@pytest.fixture
def apiserver() -> Iterator[RunningCluster]:
    server = ApiServer()
    server.controllers.append(kubelet)
    with RunningCluster(server) as cluster:
        cluster.put_object("v1/nodes", None, "worker", node("worker", "8", "16Gi"))
        yield cluster


def settings_for(cluster: RunningCluster, tmp_path: Path, **changes: Any) -> Settings:
    return cluster.settings(
        tmp_path, manifests_dir=UPSTREAM, pipeline_image=IMAGE, wait_timeout=60.0, **changes
    )


def held(cluster: RunningCluster) -> dict[tuple[str, str, str | None, str], dict[str, Any]]:
    server: ApiServer = cluster.emulator
    return cluster.call(server.applied)  # type: ignore[no-any-return]


def keys(objects: Any) -> set[tuple[str, str, str | None, str]]:
    return {
        (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        for o in objects
    }


# ---- every object of each profile reaches the API server


@pytest.mark.slow
@needs_upstream
@pytest.mark.parametrize(
    ("profile", "serving", "count"),
    [
        ("pipelines", "seldon", 16 + 72 + 12 + 5),
        ("pipelines", "kserve", 16 + 72 + 51 + 1 + 6 + 61 + 24 + 5),
        ("full", "kserve", 636 + 5),
    ],
)
def test_install_applies_every_object_of_the_profile_and_waits_for_the_pods(
    apiserver: RunningCluster, tmp_path: Path, profile: str, serving: str, count: int
) -> None:
    settings = settings_for(apiserver, tmp_path, profile=profile, serving=serving)
    plan = make_plan(settings)

    lines = install(settings, backoff=FAST, settle=0, apply_deadline=30)

    stored = held(apiserver)
    wanted = keys(o for step in plan.steps for o in step.objects) | keys(plan.rbac)
    assert plan.objects == count
    # a cluster-scoped object is stored without the namespace kustomize may have set on it
    missing = {k for k in wanted if k not in stored and (*k[:2], None, k[3]) not in stored}
    assert not missing, sorted(missing)[:5]
    crds = [o for k, o in stored.items() if k[1] == "CustomResourceDefinition"]
    assert crds and all(
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}
        in c["status"]["conditions"]
        for c in crds
    )
    assert any(line.startswith("applied the pipeline's RBAC: 5 objects") for line in lines)
    assert " pods ready " in lines[-1]
    # What the API server holds is what our RBAC files say, not only that a call was made.
    for obj in plan.rbac:
        (key,) = keys([obj])
        applied = stored.get(key) or stored[(*key[:2], None, key[3])]
        parts = ("rules", "subjects", "roleRef", "aggregationRule")
        assert any(applied.get(part) for part in parts), key
        for part in parts:
            assert applied.get(part) == obj.get(part), (key, part)


@pytest.mark.slow
@needs_upstream
def test_the_full_profile_with_seldon_routes_models_through_kubeflows_gateway(
    apiserver: RunningCluster, tmp_path: Path
) -> None:
    settings = settings_for(apiserver, tmp_path, profile="full", serving="seldon")

    install(settings, backoff=FAST, settle=0, apply_deadline=30)

    manager = held(apiserver)[
        ("apps/v1", "Deployment", "seldon-system", "seldon-controller-manager")
    ]
    env = {
        e["name"]: e.get("value")
        for e in manager["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ISTIO_ENABLED"] == "true"
    assert env["ISTIO_GATEWAY"] == "kubeflow/kubeflow-gateway"
    assert any(k[1:] == ("Gateway", "kubeflow", "kubeflow-gateway") for k in held(apiserver))


@pytest.mark.slow
@needs_upstream
def test_kserve_is_installed_pinned_in_standard_mode_after_its_webhooks_serve(
    apiserver: RunningCluster, tmp_path: Path
) -> None:
    settings = settings_for(apiserver, tmp_path, serving="kserve")
    apiserver.emulator.webhook_delay = 5.0  # KServe's webhooks start after its runtimes are sent

    install(settings, backoff=FAST, settle=0, apply_deadline=30)

    stored = held(apiserver)
    config = stored[("v1", "ConfigMap", "kserve", "inferenceservice-config")]
    assert '"defaultDeploymentMode": "Standard"' in config["data"]["deploy"]
    controller = stored[("apps/v1", "Deployment", "kserve", "kserve-controller-manager")]
    images = [c["image"] for c in controller["spec"]["template"]["spec"]["containers"]]
    assert "kserve/kserve-controller:v0.20.0" in images
    assert not any(i.endswith(":latest") or ":" not in i.split("/")[-1] for i in images)
    refused = apiserver.call(lambda: list(apiserver.emulator.refusals))
    assert any(status == 500 and "failed calling webhook" in m for status, m in refused)


@pytest.mark.slow
@needs_upstream
def test_applying_twice_changes_nothing(apiserver: RunningCluster, tmp_path: Path) -> None:
    settings = settings_for(apiserver, tmp_path)
    install(settings, backoff=FAST, settle=0, apply_deadline=30)
    first = held(apiserver)

    install(settings, backoff=FAST, settle=0, apply_deadline=30)

    assert held(apiserver) == first


# ---- order and validation, as a real API server enforces them


def applier(cluster: RunningCluster, tmp_path: Path) -> Applier:
    settings = cluster.settings(tmp_path)
    return Applier(settings_api(settings), backoff=FAST)


SELDON_CRD = "seldon-core-v1.17.1/operator-config-lite.yaml"


def seldon_deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {"predictors": [{"name": "p", "graph": {"name": "classifier"}, **spec}]},
    }


def test_a_custom_resource_before_its_crd_is_refused(
    apiserver: RunningCluster, tmp_path: Path
) -> None:
    with pytest.raises(ApplyError, match="no kind SeldonDeployment is served"):
        applier(apiserver, tmp_path).apply([seldon_deployment()], "a model", deadline=0.5)

    assert (
        held(apiserver).get(("machinelearning.seldon.io/v1", "SeldonDeployment", "default", "m"))
        is None
    )


@needs_upstream
def test_a_misspelt_field_of_a_custom_resource_is_refused_by_its_crd_schema(
    apiserver: RunningCluster, tmp_path: Path
) -> None:
    from crd_schemas import upstream_documents

    crd = next(d for d in upstream_documents(SELDON_CRD) if d["kind"] == "CustomResourceDefinition")
    apply = applier(apiserver, tmp_path)
    apply.apply_in_order([crd], "Seldon's CRD", deadline=10)

    with pytest.raises(ApplyError, match=r"\.spec\.predictors\[0\]\.replica: field not declared"):
        apply.apply([seldon_deployment(replica=1)], "a model", deadline=5)
    with pytest.raises(
        ApplyError, match=r"HTTP 422.*spec\.predictors\[0\]\.replicas: Invalid value"
    ):
        apply.apply([seldon_deployment(replicas="two")], "a model", deadline=5)
    apply.apply([seldon_deployment(replicas=2)], "a model", deadline=5)


@needs_upstream
def test_waiting_for_a_crd_to_be_established_is_logged_as_waiting_not_as_a_failure(
    apiserver: RunningCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crd = next(d for d in upstream_documents(SELDON_CRD) if d["kind"] == "CustomResourceDefinition")
    with caplog.at_level(logging.INFO, logger="hello_kubeflow.install.apply"):
        applier(apiserver, tmp_path).apply_in_order([crd], "Seldon's CRD", deadline=10)

    polls = [r.getMessage() for r in caplog.records if "CRDs of" in r.getMessage()]
    assert polls, "the emulated API server establishes a CRD 0.2 s late: one poll is logged"
    assert polls[0].startswith(
        "waiting for the CRDs of Seldon's CRD (1 CRD(s) not established yet), attempt 1;"
    )
    assert not any("failed" in line for line in polls)


def test_an_object_in_a_missing_namespace_fails_at_the_deadline_naming_it(
    apiserver: RunningCluster, tmp_path: Path
) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "nope"},
    }

    with pytest.raises(ApplyError, match='ConfigMap nope/c: HTTP 404: namespaces "nope" not found'):
        applier(apiserver, tmp_path).apply([config], "a config", deadline=0.5)


# ---- the plan, --dry-run, missing manifests


@needs_upstream
def test_dry_run_names_versions_steps_images_and_resources(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HK_MANIFESTS_DIR": str(UPSTREAM),
        "KUBECONFIG": str(tmp_path / "none"),
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
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "versions: Kubeflow Pipelines 2.17.0, Seldon Core v1.17.1" in out
    assert "1. Kubeflow Pipelines 2.17.0: 88 objects from kubeflow-pipelines-2.17.0/" in out
    assert "apply 1 Namespaces and 11 CRDs, wait until the 11 CRDs are established" in out
    assert "ghcr.io/kubeflow/kfp-api-server:2.17.0" in out
    assert (
        "docker.io/seldonio/seldon-core-operator:1.17.1" in out
        or "seldonio/seldon-core-operator:1.17.1" in out
    )
    assert "Kubeflow Pipelines 2.17.0: 970m CPU, 3552Mi memory, 35 GB disk" in out
    assert "PersistentVolumeClaims ask for 40 GiB" in out
    assert "wait until every pod in kubeflow, seldon-system is ready" in out
    # each of our RBAC objects, and the Kubeflow role an aggregated one extends
    assert (
        "     ClusterRole hello-kubeflow-kserve-policy-edit (aggregated into kubeflow-edit)"
    ) in out.splitlines()
    assert "Dry run: nothing was checked or changed." in out


def test_a_missing_manifests_folder_names_the_file_and_the_render_command(tmp_path: Path) -> None:
    with pytest.raises(
        ManifestError, match=r"kubeflow-pipelines-2\.17\.0/cluster-scoped.*inv setup --render DIR"
    ):
        make_plan(Settings(manifests_dir=tmp_path))


@needs_upstream
def test_install_stops_before_applying_when_a_prerequisite_fails(tmp_path: Path) -> None:
    settings = Settings(kubeconfig=tmp_path / "missing", pipeline_image="x", manifests_dir=UPSTREAM)

    with pytest.raises(PrerequisiteError, match="no kubeconfig found"):
        install(settings, backoff=FAST)


def test_without_a_cluster_install_says_so_before_fetching_any_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No HK_MANIFESTS_DIR and an empty cache: the kubeconfig is checked before kustomize runs."""
    tools = tmp_path / "tools"
    tools.mkdir()
    calls = tmp_path / "kustomize-calls"
    (tools / "kustomize").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')
    (tools / "kustomize").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
    settings = Settings(kubeconfig=tmp_path / "missing", cache_dir=tmp_path / "cache")

    with pytest.raises(PrerequisiteError, match="no kubeconfig found"):
        install(settings, backoff=FAST)

    assert not calls.exists()
    assert not (tmp_path / "cache").exists()


@needs_upstream
def test_the_projects_rbac_is_applied_after_every_component() -> None:
    plan = make_plan(Settings(manifests_dir=UPSTREAM))
    text = plan.describe("emulated", Settings().wait_crash_grace)

    assert keys(plan.rbac) == {
        ("rbac.authorization.k8s.io/v1", "ClusterRole", None, "hello-kubeflow-model-deployer"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", None, "hello-kubeflow-kserve-policy-edit"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", None, "hello-kubeflow-seldon-edit"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", None, "hello-kubeflow-seldon-view"),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "kubeflow",
            "hello-kubeflow-model-deployer",
        ),
    }
    assert text.index("2. Seldon Core v1.17.1") < text.index(
        f"3. the pipeline's RBAC ({RBAC_DIR.name}/)"
    )
