"""KServe behind Istio: the route the installed KServe expects, and the policy that lets us in.

The installs are upstream's own objects: the controller Deployment and the
`inferenceservice-config` ConfigMap of kubeflow/manifests 26.03 (KServe
v0.16.0, Knative mode by default, path template on) and of kserve/kserve
v0.20.0's release files (with `inv setup`'s Standard mode), from
../shared/upstream.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from apiserver import ApiServer
from crd_schemas import UPSTREAM, upstream_documents
from emulators import RunningCluster, settings_api

from hello_kubeflow.deploy.kserve_access import (
    KServeInstall,
    authorization_policy,
    deployment_mode,
    normalize_mode,
    read_install,
    route,
)
from hello_kubeflow.install.customize import KSERVE_DEPLOYMENT_MODE

KUBEFLOW = "kubeflow-manifests-26.03/example.yaml"
KSERVE = "kserve-v0.20.0/kserve.yaml"
needs_upstream = pytest.mark.skipif(
    not (UPSTREAM / "README.md").is_file(), reason=f"no upstream manifests at {UPSTREAM}"
)


@functools.cache
def kserve_objects(relative: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The controller Deployment and the inferenceservice-config ConfigMap of one upstream file."""
    found = {
        doc["kind"]: doc
        for doc in upstream_documents(relative)
        if (doc.get("kind"), doc.get("metadata", {}).get("name"))
        in (("Deployment", "kserve-controller-manager"), ("ConfigMap", "inferenceservice-config"))
    }
    return found["Deployment"], found["ConfigMap"]


def installed(relative: str, tmp_path: Path, *, mode: str = "") -> KServeInstall:
    """What `read_install` reads from a cluster holding that file's KServe objects."""
    deployment, config_map = (copy.deepcopy(o) for o in kserve_objects(relative))
    if mode:  # as `inv setup` customizes it (hello_kubeflow/install/customize.py)
        deploy = json.loads(config_map["data"]["deploy"])
        config_map["data"]["deploy"] = json.dumps({**deploy, "defaultDeploymentMode": mode})
    namespace = deployment["metadata"]["namespace"]
    with RunningCluster(ApiServer()) as cluster:
        cluster.put_object(
            "apps/v1/deployments", namespace, "kserve-controller-manager", deployment
        )
        cluster.put_object("v1/configmaps", namespace, "inferenceservice-config", config_map)
        return read_install(settings_api(cluster.settings(tmp_path)))


@needs_upstream
def test_kubeflow_26_03_routes_by_the_serving_path_on_its_ingress_domain(tmp_path: Path) -> None:
    """KServe v0.16 in Knative mode (its config still says Serverless), path template on."""
    install = installed(KUBEFLOW, tmp_path)

    assert install.version == "0.16.0"
    assert install.default_mode == "Knative"
    found = route(install, install.default_mode, "kubeflow-user-example-com", "mnist")
    assert (found.host, found.prefix) == ("example.com", "/serving/kubeflow-user-example-com/mnist")


@needs_upstream
def test_the_cluster_docs_give_the_full_profiles_kserve_route_kubeflow_26_03_makes(
    tmp_path: Path,
) -> None:
    """docs/cluster.md's "four combinations" row for full + KServe: the Host and path to use."""
    install = installed(KUBEFLOW, tmp_path)
    found = route(install, install.default_mode, "kubeflow-user-example-com", "mnist-classifier")
    docs = (Path(__file__).resolve().parents[1] / "docs" / "cluster.md").read_text()
    [row] = [line for line in docs.splitlines() if line.startswith("| full | KServe |")]

    assert f"Host `{found.host}`" in row
    assert f"`{found.prefix}/v2/models/mnist-classifier/infer`" in row


@needs_upstream
def test_kserve_0_20_in_standard_mode_routes_by_its_domain_template(tmp_path: Path) -> None:
    install = installed(KSERVE, tmp_path, mode=KSERVE_DEPLOYMENT_MODE)

    assert install.version == "0.20.0"
    found = route(install, install.default_mode, "team", "mnist")
    assert (found.host, found.prefix) == ("mnist-team.example.com", "")


def test_knative_mode_without_a_path_template_routes_by_knatives_host() -> None:
    found = route(KServeInstall(version="0.20.0"), "Knative", "team", "mnist")

    assert (found.host, found.prefix) == ("mnist.team.example.com", "")


def test_the_address_kserve_reports_wins_path_and_host() -> None:
    # status.url with the 26.03 platform's pathTemplate `/serving/{{ .Namespace }}/{{ .Name }}`
    # (kserve v0.20.0 reconcilers/ingress/ingress_reconciler.go `getServiceUrl`).
    found = route(
        KServeInstall(), "Knative", "team", "mnist", "http://example.com/serving/team/mnist"
    )

    assert (found.host, found.prefix) == ("example.com", "/serving/team/mnist")


@pytest.mark.parametrize(
    ("legacy", "current"), [("RawDeployment", "Standard"), ("Serverless", "Knative")]
)
def test_the_old_mode_names_are_read_as_the_new(legacy: str, current: str) -> None:
    assert normalize_mode(legacy) == current
    resource = {"metadata": {"annotations": {"serving.kserve.io/deploymentMode": legacy}}}
    assert deployment_mode(resource, KServeInstall()) == current


def test_the_mode_is_the_resources_status_then_annotation_then_the_default() -> None:
    install = KServeInstall(default_mode="Knative")
    annotated = {"metadata": {"annotations": {"serving.kserve.io/deploymentMode": "Standard"}}}

    assert deployment_mode({}, install) == "Knative"
    assert deployment_mode(annotated, install) == "Standard"
    # status.deploymentMode: kserve v0.20.0 pkg/apis/serving/v1beta1/inference_service_status.go
    assert deployment_mode({**annotated, "status": {"deploymentMode": "Knative"}}, install) == (
        "Knative"
    )


@pytest.mark.parametrize(
    ("version", "spelt"), [("0.15.2", "RawDeployment"), ("0.16.0", "Standard"), ("", "Standard")]
)
def test_messages_spell_the_mode_as_the_installed_version_does(version: str, spelt: str) -> None:
    assert KServeInstall(version=version).mode_name("Standard") == spelt


def test_the_policy_is_the_one_the_manifests_tests_make() -> None:
    """kubeflow/manifests 26.03 tests/kserve_test.sh, Test 7: works in both modes."""
    policy = authorization_policy("kubeflow-user-example-com", "mnist")

    assert policy["metadata"]["name"] == "allow-mnist"
    assert policy["spec"] == {
        "action": "ALLOW",
        "rules": [{}],
        "selector": {"matchLabels": {"serving.kserve.io/inferenceservice": "mnist"}},
    }
