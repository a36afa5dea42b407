"""`inv query --mode cluster` against an emulated gateway (and cluster) over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from emulators import (
    KSERVE,
    SELDON,
    ClusterEmulator,
    install_kubectl,
    kubectl_calls,
    serving,
    write_kubeconfig,
)

from hello_kubeflow.errors import EndpointError, SanityCheckError
from hello_kubeflow.query.client import QueryResult
from hello_kubeflow.query.cluster import query_cluster
from hello_kubeflow.settings import Settings

TOKEN = "tok-c4f00d"
PROBABILITIES = [0.01] * 9 + [0.91]
SELDON_PATH = "/seldon/kubeflow/mnist-classifier/api/v1.0/predictions"
DIRECT_PATH = "/api/v1.0/predictions"  # Seldon's predictor service, no gateway
V2_PATH = "/v2/models/mnist-classifier/infer"
KSERVE_HOST = "mnist-classifier.kubeflow.example.com"


class Gateway:
    """The Istio gateway in front of the served model: routes, checks the login, answers."""

    def __init__(self) -> None:
        self.handler = kmock.RawHandler()
        self.handler.fallback << self._route
        self.posts: list[dict[str, Any]] = []
        self.token: str | None = None
        self.login_redirect = False

    def _route(self, request: Any) -> kmock.Response:
        if self.login_redirect:
            return kmock.Response(status=302, headers={"Location": "/dex/auth?x=1"}, payload=b"")
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return kmock.Response(status=401, payload=b"Origin authentication failed.")
        path, method = request.url.path, str(request.method.value)
        if method != "POST":
            return kmock.Response(status=405, payload=b"method not allowed")
        self.posts.append({"path": path, "headers": dict(request.headers), "body": request.data})
        if path in (SELDON_PATH, DIRECT_PATH):
            names = [f"class:{d}" for d in range(10)]
            answer = {"data": {"names": names, "ndarray": [PROBABILITIES]}, "meta": {}}
            return kmock.Response(status=200, payload=answer)
        if path == V2_PATH and request.headers.get("Host") == KSERVE_HOST:
            output = {"name": "probabilities", "shape": [1, 10], "datatype": "FP32"}
            answer = {
                "model_name": "mnist-classifier",
                "outputs": [{**output, "data": PROBABILITIES}],
            }
            return kmock.Response(status=200, payload=answer)
        return kmock.Response(status=404, payload=b"no route")


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    emulated = Gateway()
    with serving(emulated.handler) as url:
        yield emulated, url


def _settings(mnist_dir: Path, **changes: Any) -> Settings:
    base = Settings(mnist_dir=mnist_dir, query_deadline=2.0, serving="seldon")
    return base.replace(**changes)


def test_seldon_is_queried_at_the_namespaced_path_with_the_token(
    gateway: tuple[Gateway, str],
    mnist_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulated, url = gateway
    emulated.token = TOKEN

    result = query_cluster(_settings(mnist_dir, gateway_url=url, kfp_token=TOKEN), index=7)

    assert isinstance(result, QueryResult)
    assert result.prediction == 9
    assert result.url == url + SELDON_PATH
    [post] = emulated.posts
    assert len(post["body"]["data"]["ndarray"][0]) == 784
    shown = capsys.readouterr()
    assert TOKEN not in shown.out + shown.err + caplog.text + result.describe()


def test_kserve_is_queried_on_the_v2_path_routed_by_its_host(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path
) -> None:
    emulated, url = gateway
    cluster = ClusterEmulator()
    cluster.declare(SELDON, KSERVE)
    cluster.objects[KSERVE, "kubeflow", "mnist-classifier"] = {
        "metadata": {"name": "mnist-classifier", "namespace": "kubeflow"},
        "status": {"url": f"http://{KSERVE_HOST}"},
    }
    with serving(cluster) as cluster_url:
        settings = _settings(
            mnist_dir,
            gateway_url=url,
            serving="auto",
            kubeconfig=write_kubeconfig(tmp_path / "k", cluster_url),
        )
        result = query_cluster(settings, index=0)

    assert isinstance(result, QueryResult)
    assert result.protocol == "v2"
    assert emulated.posts[0]["path"] == V2_PATH
    assert emulated.posts[0]["headers"]["Host"] == KSERVE_HOST


def test_accuracy_through_the_gateway_checks_every_answer(
    gateway: tuple[Gateway, str], mnist_dir: Path
) -> None:
    _, url = gateway

    with pytest.raises(SanityCheckError, match="1 rows of probabilities for 3 image"):
        # The emulated model answers one row whatever it is sent: the check catches it.
        query_cluster(_settings(mnist_dir, gateway_url=url), count=3)


def test_a_gateway_asking_for_a_login_says_how_to_get_the_cookie(
    gateway: tuple[Gateway, str], mnist_dir: Path
) -> None:
    emulated, url = gateway
    emulated.token = TOKEN

    with pytest.raises(EndpointError, match=r"answered 401.*HK_KFP_COOKIE"):
        query_cluster(_settings(mnist_dir, gateway_url=url), index=1)
    assert emulated.posts == []


def test_a_redirect_to_the_dex_login_is_reported_not_followed(
    gateway: tuple[Gateway, str], mnist_dir: Path
) -> None:
    emulated, url = gateway
    emulated.login_redirect = True

    with pytest.raises(EndpointError, match="redirected to the login page"):
        query_cluster(_settings(mnist_dir, gateway_url=url, kfp_cookie="authservice_session=x"))


def test_without_a_gateway_address_the_task_forwards_to_the_istio_gateway(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = gateway
    log = install_kubectl(tmp_path / "bin", {"svc/istio-ingressgateway": url.split("://")[1]})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")

    result = query_cluster(_settings(mnist_dir, kubeconfig=tmp_path / "absent"), index=3)

    assert isinstance(result, QueryResult)
    assert result.url.endswith(SELDON_PATH)
    [call] = kubectl_calls(log)
    assert call[:2] == ["port-forward", "svc/istio-ingressgateway"]
    assert call[3:5] == ["-n", "istio-system"]


def test_a_model_that_is_not_deployed_is_named_with_the_fix(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path
) -> None:
    _, url = gateway
    cluster = ClusterEmulator()
    cluster.declare(SELDON)
    with serving(cluster) as cluster_url:
        settings = _settings(
            mnist_dir, gateway_url=url, kubeconfig=write_kubeconfig(tmp_path / "k", cluster_url)
        )
        with pytest.raises(EndpointError, match=r"no model is deployed.*inv train --mode cluster"):
            query_cluster(settings, index=0)


def test_the_payload_is_the_local_modes_own(gateway: tuple[Gateway, str], mnist_dir: Path) -> None:
    """Pixels scaled to [0, 1], 784 of them, named X1..X784 as the walkthrough sends."""
    emulated, url = gateway
    query_cluster(_settings(mnist_dir, gateway_url=url), index=5)

    data = emulated.posts[0]["body"]["data"]
    row = data["ndarray"][0]
    assert len(row) == 784
    assert max(row) <= 1.0 and min(row) >= 0.0 and max(row) > 0.5
    assert data["names"][:2] == ["X1", "X2"]


def test_in_a_cluster_without_istio_the_task_forwards_to_the_models_service(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`HK_PROFILE=pipelines` installs no Istio: the predictor's own service answers."""
    emulated, url = gateway
    cluster = ClusterEmulator()
    cluster.declare(SELDON)
    address = "http://mnist-classifier-default.kubeflow.svc.cluster.local:8000/api/v1.0/predictions"
    cluster.objects[SELDON, "kubeflow", "mnist-classifier"] = {
        "metadata": {"name": "mnist-classifier", "namespace": "kubeflow"},
        "status": {"state": "Available", "address": {"url": address}},
    }
    log = install_kubectl(tmp_path / "bin", {"svc/mnist-classifier-default": url.split("://")[1]})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with serving(cluster) as cluster_url:
        settings = _settings(mnist_dir, kubeconfig=write_kubeconfig(tmp_path / "k", cluster_url))
        result = query_cluster(settings, index=2)

    assert isinstance(result, QueryResult)
    assert emulated.posts[0]["path"] == DIRECT_PATH
    [call] = kubectl_calls(log)
    assert call[1:5] == ["svc/mnist-classifier-default", call[2], "-n", "kubeflow"]
    assert call[2].endswith(":8000")


def test_with_istio_in_the_cluster_the_task_forwards_to_its_gateway(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulated, url = gateway
    cluster = ClusterEmulator()
    cluster.declare(SELDON)
    cluster.objects[SELDON, "kubeflow", "mnist-classifier"] = {
        "metadata": {"name": "mnist-classifier", "namespace": "kubeflow"},
    }
    cluster.objects["v1/services", "istio-system", "istio-ingressgateway"] = {
        "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
    }
    log = install_kubectl(tmp_path / "bin", {"svc/istio-ingressgateway": url.split("://")[1]})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with serving(cluster) as cluster_url:
        settings = _settings(mnist_dir, kubeconfig=write_kubeconfig(tmp_path / "k", cluster_url))
        query_cluster(settings, index=2)

    assert emulated.posts[0]["path"] == SELDON_PATH
    assert kubectl_calls(log)[0][1] == "svc/istio-ingressgateway"
