"""Where `notebooks/hello-kubeflow.ipynb` runs: a Kubeflow Notebook pod (cluster mode), or not."""

from __future__ import annotations

from pathlib import Path

from hello_kubeflow.errors import PipelineError
from hello_kubeflow.notebook.manifests import TOKEN_DIR
from hello_kubeflow.project import MARKERS, find_root
from hello_kubeflow.settings import Settings

TOKEN_FILE = Path(TOKEN_DIR) / "token"
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# kubeflow.org/docs/components/pipelines/user-guides/core-functions/connect-api/
# ("Kubeflow Platform - Inside the Cluster"): the host kfp.Client() uses in a pod.
KFP_IN_CLUSTER = "http://ml-pipeline-ui.kubeflow.svc.cluster.local"
# The Istio ingress gateway of Kubeflow's manifests, by its in-cluster name.
GATEWAY_IN_CLUSTER = "http://istio-ingressgateway.istio-system.svc.cluster.local"


def pod_settings(
    settings: Settings,
    *,
    token_file: Path = TOKEN_FILE,
    namespace_file: Path = NAMESPACE_FILE,
) -> Settings | None:
    """Cluster-mode settings from inside a Kubeflow Notebook pod; None anywhere else.

    The token is read now (the kubelet renews it: call again for a later run); an
    endpoint or gateway given in `settings` wins over the in-cluster addresses.
    """
    if not token_file.is_file():
        return None
    namespace = (
        namespace_file.read_text().strip() if namespace_file.is_file() else settings.namespace
    )
    return settings.replace(
        mode="cluster",
        namespace=namespace,
        kfp_endpoint=settings.kfp_endpoint or KFP_IN_CLUSTER,
        kfp_token=token_file.read_text().strip(),
        gateway_url=settings.gateway_url or GATEWAY_IN_CLUSTER,
    )


def checkout_root(start: Path) -> Path:
    """The hello-kubeflow checkout holding `start` (where `.env` and `outputs/` are).

    Raises:
        PipelineError: `start` is not inside a checkout.
    """
    root = find_root(start)
    if root is not None:
        return root
    raise PipelineError(
        f"{start} is not inside a hello-kubeflow checkout (no {' and '.join(MARKERS)} "
        "above it): open the notebook from the checkout, e.g. `git clone` it into your "
        "notebook server's workspace"
    )
