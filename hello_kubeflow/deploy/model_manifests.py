"""The served model as Kubernetes objects: a SeldonDeployment or a KServe InferenceService.

Both run the project image's model server (named as the container's `command`), and
their storage initializers fetch the model from KFP's object store into `/mnt/models`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hello_kubeflow.errors import DeploymentError
from hello_kubeflow.serving import SERVER_COMMAND
from hello_kubeflow.settings import environment

MODELS_DIR = "/mnt/models"
SELDON_PORT = 9000
KSERVE_PORT = 8080
SELDON_CONTAINER = "classifier"
KSERVE_CONTAINER = "kserve-container"
# KFP 2.17's object store, plain HTTP (kubeflow/pipelines 2.17.0: backend/src/v2/objectstore/
# config.go `DefaultEndpointInMultiUserMode`, backend/src/v2/config/env.go
# `getDefaultMinioSessionInfo`; manifests/kustomize: Service seaweedfs port 9000 -> 8333).
ARTIFACT_SECRET = "mlpipeline-minio-artifact"
ARTIFACT_ENDPOINT = "seaweedfs.kubeflow:9000"
ARTIFACT_REGION = "us-east-1"  # SeaweedFS's own; it does not check the region
RCLONE_REMOTE = "s3"
STORAGE_SECRET = "hello-kubeflow-storage"
SELDON_STORAGE_SECRET = "hello-kubeflow-seldon-storage"
STORAGE_ACCOUNT = "hello-kubeflow-models"
ANNOTATION = "hello-kubeflow.io"
SELDON_GATEWAY_ANNOTATION = "seldon.io/istio-gateway"
KUBEFLOW_GATEWAY = "kubeflow/kubeflow-gateway"  # kubeflow/manifests 26.03: Gateway kubeflow-gateway
# On the model's pod template: which deploy made a pod. Neither system's status tells:
# Seldon sets no observedGeneration, KServe copies its Deployment's (or Knative Service's).
ROLLOUT_ANNOTATION = f"{ANNOTATION}/rollout"
LABELS = {
    "app.kubernetes.io/name": "hello-kubeflow",
    "app.kubernetes.io/managed-by": "hello-kubeflow",
}


@dataclass(frozen=True)
class ServingApi:
    """One row of the one table of serving kinds: the resource's API, how its pods are found."""

    group: str
    version: str
    plural: str
    kind: str
    pod_label: str

    def pod_selector(self, name: str) -> str:
        """The label selector of the pods serving the resource `name`."""
        return f"{self.pod_label}={name}"

    @property
    def api_version(self) -> str:
        """`group/version`, as manifests write it."""
        return f"{self.group}/{self.version}"


SERVING_APIS = {  # group, version, plural, kind, the label its controller puts on the pods
    "seldon": ServingApi(
        "machinelearning.seldon.io",
        "v1",
        "seldondeployments",
        "SeldonDeployment",
        "seldon-deployment-id",
    ),
    "kserve": ServingApi(
        "serving.kserve.io",
        "v1beta1",
        "inferenceservices",
        "InferenceService",
        "serving.kserve.io/inferenceservice",
    ),
}


@dataclass(frozen=True)
class ModelDeployment:
    """What to serve (`model_uri` as KFP wrote it: `minio://`, `s3://`, `gs://`), where, how.

    `run_id` and `summary` (what the run measured) are recorded as annotations;
    `pull_secrets` are the image pull secrets the model's pods name.
    """

    name: str
    namespace: str
    serving: str
    image: str
    model_uri: str
    model_name: str = "mnist-classifier"
    run_id: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    pull_secrets: tuple[str, ...] = ()

    @property
    def api(self) -> ServingApi:
        """The resource type for this deployment's serving system."""
        return SERVING_APIS[self.serving]


def storage_uri(artifact_uri: str) -> str:
    """The object store URI a storage initializer understands (`minio://` -> `s3://`).

    KFP's launcher writes under `minio://mlpipeline/v2/artifacts/...` (kubeflow/pipelines
    2.17.0, backend/src/v2/objectstore/object_store.go `UploadBlob`).

    Raises:
        DeploymentError: for a URI that no storage initializer can fetch.
    """
    parts = urlsplit(artifact_uri)
    if parts.scheme == "minio":
        return f"s3://{parts.netloc}{parts.path}"
    if parts.scheme in ("s3", "gs") and parts.netloc:
        return artifact_uri
    raise DeploymentError(
        f"the model artifact is at {artifact_uri!r}, which the model server cannot fetch: "
        "the pipeline root must be an object store (minio://, s3:// or gs://), as Kubeflow "
        "Pipelines' default is"
    )


def manifest(deployment: ModelDeployment) -> dict[str, Any]:
    """The resource for `deployment`'s serving system, ready for server-side apply."""
    if deployment.serving == "seldon":
        return seldon_deployment(deployment)
    if deployment.serving == "kserve":
        return inference_service(deployment)
    raise DeploymentError(f"unknown serving system {deployment.serving!r}: use seldon or kserve")


def rclone_uri(artifact_uri: str) -> str:
    """The model's URI as Seldon's rclone storage initializer takes it: `s3:<bucket>/<key>`.

    Seldon Core v1.17.1 runs `rclone copy <modelUri> /mnt/models`, the remote configured by
    `RCLONE_CONFIG_<REMOTE>_*` variables (operator/controllers/model_initializer_injector.go,
    seldondeployment_prepackaged_servers.go; components/rclone-storage-initializer/readme.md).

    Raises:
        DeploymentError: for a URI no storage initializer can fetch.
    """
    source = storage_uri(artifact_uri)
    scheme, rest = source.split("://", 1)
    return f"{RCLONE_REMOTE if scheme == 's3' else scheme}:{rest}"


def seldon_deployment(deployment: ModelDeployment) -> dict[str, Any]:
    """A SeldonDeployment running the project's server on the Seldon protocol.

    The `seldon.io/istio-gateway` annotation binds the VirtualService Seldon makes
    (operator with ISTIO_ENABLED=true) to Kubeflow's gateway: the model answers at
    `/seldon/<namespace>/<name>/` there (SeldonIO/seldon-core v1.17.1,
    operator/controllers/istio.go, seldondeployment_controller.go `createIstioResources`).
    """
    server = {
        "name": SELDON_CONTAINER,
        "image": deployment.image,
        "command": list(SERVER_COMMAND),
        "env": _server_env(deployment, SELDON_PORT),
        "ports": [{"name": "http", "containerPort": SELDON_PORT, "protocol": "TCP"}],
    }
    pod_spec: dict[str, Any] = {"containers": [server]}
    if deployment.pull_secrets:  # the componentSpec is a PodSpec (Seldon v1.17.1 CRD schema)
        pod_spec["imagePullSecrets"] = _references(deployment.pull_secrets)
    metadata = _metadata(deployment)
    metadata["annotations"][SELDON_GATEWAY_ANNOTATION] = KUBEFLOW_GATEWAY
    model_uri = rclone_uri(deployment.model_uri)
    graph = {
        "name": SELDON_CONTAINER,
        "type": "MODEL",
        "endpoint": {"type": "REST"},
        "modelUri": model_uri,
        "envSecretRefName": SELDON_STORAGE_SECRET,
        "children": [],
    }
    # Seldon copies the component's annotations onto the pods: a new value rolls them.
    rollout = _rollout({"pod": pod_spec, "model": model_uri}, deployment.run_id)
    component = {"metadata": {"annotations": {ROLLOUT_ANNOTATION: rollout}}, "spec": pod_spec}
    predictor = {"name": "default", "replicas": 1, "graph": graph, "componentSpecs": [component]}
    return {
        "apiVersion": deployment.api.api_version,
        "kind": deployment.api.kind,
        "metadata": metadata,
        "spec": {"name": deployment.name, "protocol": "seldon", "predictors": [predictor]},
    }


def inference_service(deployment: ModelDeployment) -> dict[str, Any]:
    """A KServe InferenceService running the project's server on the V2 protocol."""
    env = [{"name": "STORAGE_URI", "value": storage_uri(deployment.model_uri)}]
    server = {
        "name": KSERVE_CONTAINER,
        "image": deployment.image,
        "command": list(SERVER_COMMAND),
        "env": env + _server_env(deployment, KSERVE_PORT),
        "ports": [{"containerPort": KSERVE_PORT, "protocol": "TCP"}],
        # The port is required outside Knative (KServe's RawDeployment makes a Deployment).
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": KSERVE_PORT}},
    }
    predictor: dict[str, Any] = {
        "minReplicas": 1,
        "serviceAccountName": STORAGE_ACCOUNT,
        "containers": [server],
    }
    if deployment.pull_secrets:  # PredictorSpec inlines a PodSpec (KServe v0.20.0 CRD schema)
        predictor["imagePullSecrets"] = _references(deployment.pull_secrets)
    # KServe puts the predictor's annotations on its pods' template, so a new value rolls
    # them (kserve v0.20.0, pkg/controller/v1beta1/inferenceservice/: components/predictor.go
    # `buildObjectMeta`, then the Deployment's pod template in reconcilers/deployment/
    # deployment_reconciler.go, or the Knative Service's in reconcilers/knative/).
    predictor["annotations"] = {
        ROLLOUT_ANNOTATION: _rollout({"pod": dict(predictor)}, deployment.run_id)
    }
    return {
        "apiVersion": deployment.api.api_version,
        "kind": deployment.api.kind,
        "metadata": _metadata(deployment),
        "spec": {"predictor": predictor},
    }


def storage_credentials(
    namespace: str, access_key: str, secret_key: str, endpoint: str = ARTIFACT_ENDPOINT
) -> list[dict[str, Any]]:
    """The Secret and ServiceAccount KServe's storage initializer reads S3 credentials from.

    `endpoint` is `host:port` of KFP's object store, over plain HTTP (kserve v0.20.0: the
    `inferenceservice-config` credentials in kserve.yaml; pkg/credentials/s3/s3_secret.go,
    utils.go `BuildS3EnvVars`).
    """
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": STORAGE_SECRET,
            "namespace": namespace,
            "labels": LABELS,
            "annotations": {
                "serving.kserve.io/s3-endpoint": endpoint,
                "serving.kserve.io/s3-usehttps": "0",
                "serving.kserve.io/s3-verifyssl": "0",
                "serving.kserve.io/s3-region": ARTIFACT_REGION,
            },
        },
        "type": "Opaque",
        "stringData": {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key},
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": STORAGE_ACCOUNT, "namespace": namespace, "labels": LABELS},
        "secrets": [{"name": STORAGE_SECRET}],
    }
    return [secret, account]


def seldon_storage_secret(
    namespace: str, access_key: str, secret_key: str, endpoint: str = ARTIFACT_ENDPOINT
) -> dict[str, Any]:
    """The Secret (`envSecretRefName`) that configures `rclone_uri`'s remote for KFP's store.

    rclone's `Other` provider uses path-style requests, as SeaweedFS needs.
    """
    remote = f"RCLONE_CONFIG_{RCLONE_REMOTE.upper()}_"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SELDON_STORAGE_SECRET, "namespace": namespace, "labels": LABELS},
        "type": "Opaque",
        "stringData": {
            f"{remote}TYPE": "s3",
            f"{remote}PROVIDER": "Other",
            f"{remote}ENV_AUTH": "false",
            f"{remote}ENDPOINT": f"http://{endpoint}",
            f"{remote}REGION": ARTIFACT_REGION,
            f"{remote}ACCESS_KEY_ID": access_key,
            f"{remote}SECRET_ACCESS_KEY": secret_key,
        },
    }


def recorded_summary(resource: dict[str, Any]) -> dict[str, Any]:
    """What the deploy step recorded on the resource: run ID, model URI, measurements."""
    annotations = (resource.get("metadata") or {}).get("annotations") or {}
    try:
        summary = json.loads(annotations.get(f"{ANNOTATION}/summary") or "{}")
    except ValueError:
        summary = {}
    summary["run_id"] = annotations.get(f"{ANNOTATION}/run-id", "")
    summary["model_uri"] = annotations.get(f"{ANNOTATION}/model-uri", "")
    return dict(summary)


def rollout_of(resource: dict[str, Any]) -> str:
    """The rollout value on a served model's pod template ("" for none)."""
    spec = resource.get("spec") or {}
    annotations = (spec.get("predictor") or {}).get("annotations") or {}
    if annotations.get(ROLLOUT_ANNOTATION):  # an InferenceService
        return str(annotations[ROLLOUT_ANNOTATION])
    for predictor in spec.get("predictors") or []:
        for component in predictor.get("componentSpecs") or []:
            annotations = (component.get("metadata") or {}).get("annotations") or {}
            if annotations.get(ROLLOUT_ANNOTATION):
                return str(annotations[ROLLOUT_ANNOTATION])
    return ""


def _rollout(pod_spec: dict[str, Any], run_id: str) -> str:
    """A value that changes whenever what the pods run changes (model, image, run)."""
    content = json.dumps([run_id, pod_spec], sort_keys=True).encode()
    return hashlib.sha256(content).hexdigest()[:16]


def _references(names: tuple[str, ...]) -> list[dict[str, str]]:
    """`LocalObjectReference`s, as a PodSpec's `imagePullSecrets` lists them."""
    return [{"name": name} for name in names]


def _metadata(deployment: ModelDeployment) -> dict[str, Any]:
    return {
        "name": deployment.name,
        "namespace": deployment.namespace,
        "labels": LABELS,
        "annotations": {
            f"{ANNOTATION}/run-id": deployment.run_id,
            f"{ANNOTATION}/model-uri": deployment.model_uri,
            f"{ANNOTATION}/summary": json.dumps(deployment.summary, sort_keys=True),
        },
    }


def _server_env(deployment: ModelDeployment, port: int) -> list[dict[str, Any]]:
    env = environment(
        model_dir=MODELS_DIR,
        serve_host="0.0.0.0",
        serve_port=port,
        model_name=deployment.model_name,
    )
    return [{"name": name, "value": value} for name, value in env.items()]
