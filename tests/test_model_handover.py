"""The trained model's way from KFP's object store to an answer, over a real S3 API.

The launcher's upload, then each serving system's own storage initializer with
exactly the URI and Secret the deploy step makes, then our server on what was
downloaded, queried with the sanity check of `inv query`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from crd_schemas import upstream_file
from s3_support import (
    ACCESS_KEY,
    SECRET_KEY,
    kserve_initializer,
    kserve_initializer_env,
    s3_server,
    seldon_initializer,
    upload_like_the_launcher,
)
from serving_support import make_tiny_model, mnist_test_pixels

from hello_kubeflow.deploy.model_manifests import (
    ARTIFACT_ENDPOINT,
    ARTIFACT_SECRET,
    ModelDeployment,
    manifest,
    seldon_storage_secret,
    storage_credentials,
)
from hello_kubeflow.model.artifact import load_model
from hello_kubeflow.query.client import query_digit
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import Settings

MODEL_URI = "minio://mlpipeline/v2/artifacts/hello-kubeflow-mnist/0b6f1c2e/train/8d1f/model"
KFP_MANIFESTS = "kubeflow-pipelines-2.17.0/env-platform-agnostic.yaml"
NAMESPACE = "kubeflow-user-example-com"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(mnist_dir, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def store(model_dir: Path) -> Iterator[str]:
    """The S3 server, holding the model where the launcher puts it; yields its `host:port`."""
    with s3_server() as endpoint:
        upload_like_the_launcher(endpoint, model_dir, MODEL_URI)
        yield endpoint


def _deployment(serving: str) -> ModelDeployment:
    return ModelDeployment(
        name="mnist-classifier",
        namespace=NAMESPACE,
        serving=serving,
        image="localhost:5000/hello-kubeflow@sha256:" + "ab" * 32,
        model_uri=MODEL_URI,
    )


def _same_files(left: Path, right: Path) -> bool:
    names = sorted(p.name for p in left.iterdir())
    return names == sorted(p.name for p in right.iterdir()) and all(
        (left / n).read_bytes() == (right / n).read_bytes() for n in names
    )


def _answers_like_the_trained_model(
    downloaded: Path, model_dir: Path, mnist_dir: Path, protocol: str
) -> None:
    pixels, _ = mnist_test_pixels(mnist_dir)
    expected = int(load_model(model_dir).predict(pixels[:1])[0])
    with running_server(Settings(serve_port=0, serve_host="127.0.0.1"), downloaded) as server:
        result = query_digit(
            Settings(query_url=server.url, mnist_dir=mnist_dir), index=0, protocol=protocol
        )
    assert result.prediction == expected
    assert np.isclose(sum(result.probabilities), 1.0, atol=1e-3)


def test_kserves_storage_initializer_fetches_what_the_launcher_wrote(
    store: str, model_dir: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    """STORAGE_URI and the service account's Secret are all KServe needs to serve the model."""
    service = manifest(_deployment("kserve"))
    predictor = service["spec"]["predictor"]
    [container] = predictor["containers"]
    storage_uri = next(e["value"] for e in container["env"] if e["name"] == "STORAGE_URI")
    secret, account = storage_credentials(NAMESPACE, ACCESS_KEY, SECRET_KEY, endpoint=store)
    assert predictor["serviceAccountName"] == account["metadata"]["name"]
    assert account["secrets"] == [{"name": secret["metadata"]["name"]}]

    kserve_initializer(storage_uri, tmp_path / "mnt-models", kserve_initializer_env(secret))

    assert _same_files(tmp_path / "mnt-models", model_dir)
    _answers_like_the_trained_model(tmp_path / "mnt-models", model_dir, mnist_dir, "v2")


def test_seldons_storage_initializer_fetches_what_the_launcher_wrote(
    store: str, model_dir: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    """`modelUri` and the `envSecretRefName` Secret are all Seldon's rclone initializer needs."""
    if shutil.which("rclone") is None:
        pytest.skip(
            "rclone (what Seldon's storage initializer runs) is missing: apt-get install rclone"
        )
    graph = manifest(_deployment("seldon"))["spec"]["predictors"][0]["graph"]
    secret = seldon_storage_secret(NAMESPACE, ACCESS_KEY, SECRET_KEY, endpoint=store)
    assert graph["envSecretRefName"] == secret["metadata"]["name"]

    seldon_initializer(graph["modelUri"], tmp_path / "mnt-models", secret)

    assert _same_files(tmp_path / "mnt-models", model_dir)
    _answers_like_the_trained_model(tmp_path / "mnt-models", model_dir, mnist_dir, "seldon")


def test_a_wrong_endpoint_fails_the_initializer_rather_than_serving_nothing(
    store: str, tmp_path: Path
) -> None:
    """The hand-over above is really checked: a Secret naming another store fails the download."""
    secret, _ = storage_credentials(NAMESPACE, ACCESS_KEY, SECRET_KEY, endpoint="127.0.0.1:9")
    storage_uri = MODEL_URI.replace("minio://", "s3://")

    with pytest.raises(
        AssertionError, match=r"(?s)failed.*Could not connect.*127.0.0.1:9/mlpipeline"
    ):
        kserve_initializer(storage_uri, tmp_path / "out", kserve_initializer_env(secret))


def test_the_store_is_where_kfp_2_17_puts_it() -> None:
    """Endpoint, scheme, bucket and Secret agree with KFP 2.17.0's rendered manifests."""
    docs: list[dict[str, Any]] = [
        d
        for d in yaml.load_all(upstream_file(KFP_MANIFESTS).read_text(), Loader=yaml.CSafeLoader)
        if d
    ]
    host, port = ARTIFACT_ENDPOINT.split(":")
    service, namespace = host.split(".")
    [svc] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == service]
    assert svc["metadata"]["namespace"] == namespace
    assert int(port) in [p["port"] for p in svc["spec"]["ports"]]
    [secret] = [
        d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == ARTIFACT_SECRET
    ]
    assert {"accesskey", "secretkey"} <= set(secret["stringData"])
    [config] = [d for d in docs if d["metadata"]["name"] == "workflow-controller-configmap"]
    repository = yaml.safe_load(config["data"]["artifactRepository"])["s3"]
    assert repository["endpoint"] == f"{service}.{namespace}.svc:{port}"
    assert repository["insecure"] is True  # plain HTTP, as our Secrets say
    assert repository["bucket"] == MODEL_URI.split("/")[2]
