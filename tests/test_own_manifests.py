"""Every object the project writes itself validates against the schemas that will judge it.

Built-in kinds (our RBAC, the storage Secret and ServiceAccount, KServe's
Namespace) against the Kubernetes OpenAPI schemas of a current release
(`kubernetes-validate`, strict: unknown fields refused); the SeldonDeployment
and the InferenceService against the CRD schemas in upstream's rendered
manifests (Seldon Core v1.17.1; KServe v0.20.0 and the platform's v0.16.0).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from crd_schemas import UPSTREAM, crd_schemas, upstream_documents, validate

from hello_kubeflow.deploy.kserve_access import authorization_policy
from hello_kubeflow.deploy.model_manifests import (
    ModelDeployment,
    inference_service,
    seldon_deployment,
    storage_credentials,
)
from hello_kubeflow.deploy.pull_secret import PULL_SECRET, RegistryLogin
from hello_kubeflow.install.components import kserve, read_manifests
from hello_kubeflow.install.customize import added_objects
from hello_kubeflow.install.install import RBAC_DIR

KUBERNETES = "1.35"
"""A current Kubernetes release (kubernetes-validate ships its schemas)."""
IMAGE = "localhost:5000/hello-kubeflow@sha256:" + "ab" * 32
MODEL_URI = "minio://mlpipeline/v2/artifacts/hello/run/train/1/model"
needs_upstream = pytest.mark.skipif(
    not (UPSTREAM / "README.md").is_file(),
    reason=f"upstream's rendered manifests are not at {UPSTREAM} (HK_TEST_UPSTREAM_DIR)",
)


def built_in_objects() -> list[dict[str, Any]]:
    rbac = [o for path in sorted(RBAC_DIR.glob("*.yaml")) for o in read_manifests(path)]
    return [
        *rbac,
        *storage_credentials("kubeflow", "minio", "minio123"),
        RegistryLogin("ghcr.io/me", "me", "password").secret("kubeflow"),
        *added_objects(kserve("0.20.0")),
    ]


def model(serving: str) -> dict[str, Any]:
    deployment = ModelDeployment(
        name="mnist-classifier",
        namespace="kubeflow",
        serving=serving,
        image=IMAGE,
        model_uri=MODEL_URI,
        run_id="run-1",
        summary={"accuracy": 0.97},
        pull_secrets=(PULL_SECRET,),  # where a PodSpec takes them, in both CRDs
    )
    return seldon_deployment(deployment) if serving == "seldon" else inference_service(deployment)


@functools.cache
def crd_schemas_for(kind: str) -> dict[str, dict[str, Any]]:
    """upstream file -> the schema of `kind` it defines (every file that defines it)."""
    found = {}
    for path in sorted(UPSTREAM.glob("*/*.yaml")):
        relative = str(path.relative_to(UPSTREAM))
        for doc in upstream_documents(relative):
            if (
                doc.get("kind") == "CustomResourceDefinition"
                and doc["spec"]["names"]["kind"] == kind
            ):
                found.update({f"{relative} {k[0]}": v for k, v in crd_schemas(doc).items()})
    return found


def test_our_built_in_objects_are_valid_kubernetes_objects() -> None:
    objects = built_in_objects()

    assert {o["kind"] for o in objects} >= {
        "ClusterRole",
        "RoleBinding",
        "Secret",
        "ServiceAccount",
        "Namespace",
    }
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    ("where", "bad"),
    [
        ("rules", lambda o: o.__setitem__("rule", o.pop("rules"))),  # misspelt
        ("metadata", lambda o: o.__setitem__("labels", o["metadata"].pop("labels"))),  # misplaced
    ],
)
def test_a_misspelt_or_misplaced_field_of_a_built_in_object_is_refused(
    where: str, bad: Any
) -> None:
    role = copy.deepcopy(next(o for o in built_in_objects() if o["kind"] == "ClusterRole"))
    bad(role)

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, KUBERNETES, strict=True)


@needs_upstream
@pytest.mark.parametrize(
    ("serving", "kind"), [("seldon", "SeldonDeployment"), ("kserve", "InferenceService")]
)
def test_the_served_model_validates_against_every_upstream_crd_schema(
    serving: str, kind: str
) -> None:
    schemas = crd_schemas_for(kind)
    obj = model(serving)
    api_version = obj["apiVersion"]

    matching = {source: s for source, s in schemas.items() if source.endswith(f" {api_version}")}
    assert matching, f"no upstream CRD serves {api_version} {kind}: {sorted(schemas)}"
    for source, schema in matching.items():
        assert validate(obj, schema) == ([], []), source


@needs_upstream
@pytest.mark.parametrize("serving", ["seldon", "kserve"])
def test_a_misspelt_field_of_the_served_model_is_caught_by_its_crd_schema(serving: str) -> None:
    kind = "SeldonDeployment" if serving == "seldon" else "InferenceService"
    obj = model(serving)
    if serving == "seldon":
        obj["spec"]["predictors"][0]["replica"] = 1
        wanted = "spec.predictors[0].replica"
    else:
        obj["spec"]["predictor"]["minReplica"] = 1
        wanted = "spec.predictor.minReplica"
    schemas = {s: v for s, v in crd_schemas_for(kind).items() if s.endswith(obj["apiVersion"])}

    for source, schema in schemas.items():
        assert validate(obj, schema)[1] == [wanted], source


def test_the_validator_sees_a_wrong_type_in_a_declared_field(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}},
    }

    invalid, unknown = validate(
        {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"replicas": "2"}},
        schema,
    )

    assert invalid == ["spec.replicas: Invalid value: string: must be of type integer"]
    assert unknown == []


@needs_upstream
def test_the_inference_services_authorization_policy_validates_against_istios_crd() -> None:
    """The policy `inv query` makes for KServe in a profile namespace (Istio 1.29's schema)."""
    policy = authorization_policy("kubeflow-user-example-com", "mnist-classifier")
    schemas = crd_schemas_for("AuthorizationPolicy")

    matching = {s: v for s, v in schemas.items() if s.endswith(f" {policy['apiVersion']}")}
    assert matching, sorted(schemas)
    for source, schema in matching.items():
        assert validate(policy, schema) == ([], []), source
