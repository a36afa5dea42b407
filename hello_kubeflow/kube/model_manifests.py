"""The served model as Kubernetes objects: a SeldonDeployment or a KServe InferenceService.

Both run the project image's model server (named as the container's `command`:
the image's own default is the notebook server) and get the
trained model as the pipeline wrote it, from the object store, into
`/mnt/models` before the server starts; the model is never baked into the
image. Seldon: an init container copies it with rclone, credentials read from
KFP's own artifact secret. KServe: the `STORAGE_URI` of the server container
makes KServe's storage initializer fetch it, with credentials from a service
account whose secret is copied from KFP's (see `storage_credentials`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hello_kubeflow.errors import DeploymentError
from hello_kubeflow.serving import SERVER_COMMAND

SELDON_API = ("machinelearning.seldon.io", "v1", "seldondeployments", "SeldonDeployment")
KSERVE_API = ("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")
MODELS_DIR = "/mnt/models"
SELDON_PORT = 9000
KSERVE_PORT = 8080
SELDON_CONTAINER = "classifier"
KSERVE_CONTAINER = "kserve-container"
RCLONE_IMAGE = "docker.io/rclone/rclone:1.68.2"
ARTIFACT_SECRET = "mlpipeline-minio-artifact"
ARTIFACT_ENDPOINT = "minio-service.kubeflow:9000"
STORAGE_SECRET = "hello-kubeflow-storage"
STORAGE_ACCOUNT = "hello-kubeflow-models"
ANNOTATION = "hello-kubeflow.io"
# On the model's pod template: which deploy made a pod (Seldon sets no observedGeneration).
ROLLOUT_ANNOTATION = f"{ANNOTATION}/rollout"
LABELS = {
    "app.kubernetes.io/name": "hello-kubeflow",
    "app.kubernetes.io/managed-by": "hello-kubeflow",
}


@dataclass(frozen=True)
class ServingApi:
    """Where one serving system's resource lives in the Kubernetes API."""

    serving: str
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """`group/version`, as manifests write it."""
        return f"{self.group}/{self.version}"


SERVING_APIS = {
    "seldon": ServingApi("seldon", *SELDON_API),
    "kserve": ServingApi("kserve", *KSERVE_API),
}


@dataclass(frozen=True)
class ModelDeployment:
    """What to serve, where, and how.

    Attributes:
        name: the resource's name (and the Seldon URL's last part).
        namespace: where it runs.
        serving: `seldon` or `kserve`.
        image: the project image (by digest).
        model_uri: the model artifact's URI, as KFP wrote it (`minio://`, `s3://`, `gs://`).
        model_name: the model's name in the V2 protocol.
        run_id: the KFP run that trained it (recorded as an annotation).
        summary: what the run measured (recorded as an annotation).
    """

    name: str
    namespace: str
    serving: str
    image: str
    model_uri: str
    model_name: str = "mnist-classifier"
    run_id: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> ServingApi:
        """The resource type for this deployment's serving system."""
        return SERVING_APIS[self.serving]


def storage_uri(artifact_uri: str) -> str:
    """The object store URI a storage initializer understands (`minio://` -> `s3://`).

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


def seldon_deployment(deployment: ModelDeployment) -> dict[str, Any]:
    """A SeldonDeployment running the project's server on the Seldon protocol."""
    source = storage_uri(deployment.model_uri)
    bucket_path = source.split("://", 1)[1]
    fetch = {
        "name": "fetch-model",
        "image": RCLONE_IMAGE,
        "args": ["copy", f"store:{bucket_path}", MODELS_DIR],
        "env": _rclone_env(source),
        "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}],
    }
    server = {
        "name": SELDON_CONTAINER,
        "image": deployment.image,
        "command": list(SERVER_COMMAND),
        "env": _server_env(deployment, SELDON_PORT),
        "ports": [{"name": "http", "containerPort": SELDON_PORT, "protocol": "TCP"}],
        "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR, "readOnly": True}],
    }
    pod_spec = {
        "initContainers": [fetch],
        "containers": [server],
        "volumes": [{"name": "models", "emptyDir": {}}],
    }
    return {
        "apiVersion": deployment.api.api_version,
        "kind": deployment.api.kind,
        "metadata": _metadata(deployment),
        "spec": {
            "name": deployment.name,
            "protocol": "seldon",
            "predictors": [
                {
                    "name": "default",
                    "replicas": 1,
                    "graph": {
                        "name": SELDON_CONTAINER,
                        "type": "MODEL",
                        "endpoint": {"type": "REST"},
                        "children": [],
                    },
                    "componentSpecs": [
                        {
                            # Seldon copies these onto the pods, and a new value rolls them.
                            "metadata": {
                                "annotations": {
                                    ROLLOUT_ANNOTATION: _rollout(pod_spec, deployment.run_id)
                                }
                            },
                            "spec": pod_spec,
                        }
                    ],
                }
            ],
        },
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
    return {
        "apiVersion": deployment.api.api_version,
        "kind": deployment.api.kind,
        "metadata": _metadata(deployment),
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "serviceAccountName": STORAGE_ACCOUNT,
                "containers": [server],
            }
        },
    }


def storage_credentials(namespace: str, access_key: str, secret_key: str) -> list[dict[str, Any]]:
    """The Secret and ServiceAccount KServe's storage initializer reads S3 credentials from."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": STORAGE_SECRET,
            "namespace": namespace,
            "labels": LABELS,
            "annotations": {
                "serving.kserve.io/s3-endpoint": ARTIFACT_ENDPOINT,
                "serving.kserve.io/s3-usehttps": "0",
                "serving.kserve.io/s3-verifyssl": "0",
                "serving.kserve.io/s3-region": "us-east-1",
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
    """The rollout value on a SeldonDeployment's pod template ("" for none, or for KServe).

    Pods carrying it were made from this spec: they serve this deploy's model.
    """
    for predictor in (resource.get("spec") or {}).get("predictors") or []:
        for component in predictor.get("componentSpecs") or []:
            annotations = (component.get("metadata") or {}).get("annotations") or {}
            if annotations.get(ROLLOUT_ANNOTATION):
                return str(annotations[ROLLOUT_ANNOTATION])
    return ""


def _rollout(pod_spec: dict[str, Any], run_id: str) -> str:
    """A value that changes whenever what the pods run changes (model, image, run)."""
    content = json.dumps([run_id, pod_spec], sort_keys=True).encode()
    return hashlib.sha256(content).hexdigest()[:16]


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
    return [
        {"name": "HK_MODEL_DIR", "value": MODELS_DIR},
        {"name": "HK_SERVE_HOST", "value": "0.0.0.0"},
        {"name": "HK_SERVE_PORT", "value": str(port)},
        {"name": "HK_MODEL_NAME", "value": deployment.model_name},
    ]


def _rclone_env(source: str) -> list[dict[str, Any]]:
    """rclone's remote `store`: KFP's MinIO for s3:// (keys from KFP's own secret), or GCS."""
    if source.startswith("gs://"):
        return [
            {"name": "RCLONE_CONFIG_STORE_TYPE", "value": "google cloud storage"},
            {"name": "RCLONE_CONFIG_STORE_ENV_AUTH", "value": "true"},
        ]

    def key(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": ARTIFACT_SECRET, "key": key}}}

    return [
        {"name": "RCLONE_CONFIG_STORE_TYPE", "value": "s3"},
        {"name": "RCLONE_CONFIG_STORE_PROVIDER", "value": "Minio"},
        {"name": "RCLONE_CONFIG_STORE_ENDPOINT", "value": f"http://{ARTIFACT_ENDPOINT}"},
        {"name": "RCLONE_CONFIG_STORE_ENV_AUTH", "value": "false"},
        key("RCLONE_CONFIG_STORE_ACCESS_KEY_ID", "accesskey"),
        key("RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY", "secretkey"),
    ]
