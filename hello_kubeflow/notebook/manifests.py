"""The notebook server as Kubernetes objects: a Kubeflow Notebook, its workspace, its token.

- `Notebook` (kubeflow.org/v1, CRD in kubeflow/manifests 26.03 `example/`): kubeflow/kubeflow
  v1.10.0 `components/crud-web-apps/jupyter/backend/apps/common/yaml/notebook_template.yaml`
  with the workspace of `spawner_ui_config.yaml`; its controller
  (`components/notebook-controller/controllers/notebook_controller.go`) labels the pod
  `notebook-name=<name>` and routes `/notebook/<namespace>/<name>/` through Istio.
- `PodDefault` `access-ml-pipeline` (kubeflow.org/v1alpha1): the projected token of
  kubeflow.org/docs/components/pipelines/user-guides/core-functions/connect-api/ ("Inside
  the Cluster"), audience as KFP's own in the 26.03 manifests (ml-pipeline-persistenceagent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NOTEBOOK_API = ("kubeflow.org/v1", "notebooks", "Notebook")  # apiVersion, plural, kind
PODDEFAULT_API = ("kubeflow.org/v1alpha1", "poddefaults", "PodDefault")
HOME = "/home/jovyan"
WORKSPACE_VOLUME = "workspace"
SERVICE_ACCOUNT = "default-editor"  # what the Jupyter web app gives every Notebook pod
PIPELINE_ACCESS = "access-ml-pipeline"
TOKEN_AUDIENCE = "pipelines.kubeflow.org"
TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"
TOKEN_SECONDS = 7200
POD_LABEL = "notebook-name"  # set by the Notebook controller on the server's pod
LABELS = {
    "app.kubernetes.io/name": "hello-kubeflow",
    "app.kubernetes.io/managed-by": "hello-kubeflow",
}


@dataclass(frozen=True)
class NotebookSpec:
    """What notebook server to run, and where.

    Attributes:
        name: the Notebook's name (also its container's, as the controller expects).
        namespace: the user's profile namespace.
        image: the project image, by digest.
        cpu: the CPU request, e.g. `1`.
        memory: the memory request and limit, e.g. `2Gi`.
        volume_size: the workspace volume's size, e.g. `5Gi`.
    """

    name: str
    namespace: str
    image: str
    cpu: str
    memory: str
    volume_size: str

    @property
    def claim_name(self) -> str:
        """The workspace volume's PVC, named as the Jupyter web app names it."""
        return f"{self.name}-workspace"

    @property
    def path(self) -> str:
        """Where the gateway serves it: `/notebook/<namespace>/<name>/`."""
        return f"/notebook/{self.namespace}/{self.name}/"


def notebook(spec: NotebookSpec) -> dict[str, Any]:
    """The Notebook, ready for server-side apply."""
    container = {
        "name": spec.name,  # the controller mirrors the state of the container named so
        "image": spec.image,
        "resources": {
            "requests": {"cpu": spec.cpu, "memory": spec.memory},
            "limits": {"memory": spec.memory},
        },
        "volumeMounts": [{"name": WORKSPACE_VOLUME, "mountPath": HOME}],
    }
    return {
        "apiVersion": NOTEBOOK_API[0],
        "kind": NOTEBOOK_API[2],
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            # Copied onto the pod by the controller: the PodDefault selects it by this.
            "labels": {"app": spec.name, PIPELINE_ACCESS: "true", **LABELS},
            "annotations": {"notebooks.kubeflow.org/server-type": "jupyter"},
        },
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "containers": [container],
                    "volumes": [
                        {
                            "name": WORKSPACE_VOLUME,
                            "persistentVolumeClaim": {"claimName": spec.claim_name},
                        }
                    ],
                }
            }
        },
    }


def workspace_claim(spec: NotebookSpec) -> dict[str, Any]:
    """The workspace volume's PersistentVolumeClaim (the cluster's default storage class)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": spec.claim_name, "namespace": spec.namespace, "labels": LABELS},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.volume_size}},
        },
    }


def pipeline_access(namespace: str) -> dict[str, Any]:
    """The PodDefault that gives selected pods a token for the Kubeflow Pipelines API."""
    return {
        "apiVersion": PODDEFAULT_API[0],
        "kind": PODDEFAULT_API[2],
        "metadata": {"name": PIPELINE_ACCESS, "namespace": namespace, "labels": LABELS},
        "spec": {
            "desc": "Allow access to Kubeflow Pipelines",
            "selector": {"matchLabels": {PIPELINE_ACCESS: "true"}},
            "volumes": [
                {
                    "name": "volume-kf-pipeline-token",
                    "projected": {
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "path": "token",
                                    "expirationSeconds": TOKEN_SECONDS,
                                    "audience": TOKEN_AUDIENCE,
                                }
                            }
                        ]
                    },
                }
            ],
            "volumeMounts": [
                {"mountPath": TOKEN_DIR, "name": "volume-kf-pipeline-token", "readOnly": True}
            ],
            "env": [{"name": "KF_PIPELINES_SA_TOKEN_PATH", "value": f"{TOKEN_DIR}/token"}],
        },
    }
