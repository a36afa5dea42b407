"""Endpoints, port-forwards, authentication and URLs for reaching the cluster."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import kmock
import pytest
import requests
from emulators import install_kubectl, kubectl_calls, serving

from hello_kubeflow.errors import ClusterError, PrerequisiteError
from hello_kubeflow.gateway.endpoints import (
    Auth,
    auth_failure_message,
    describe_gateway,
    describe_kfp_endpoint,
    gateway,
    kfp_endpoint,
    model_service,
    serving_address,
)
from hello_kubeflow.kube.port_forward import port_forward
from hello_kubeflow.settings import Settings

TOKEN = "tok-3f9a7c"
COOKIE = "oauth2_proxy_kubeflow=cookie-81d2e4"


@pytest.fixture
def echo_server() -> Iterator[str]:
    """A tiny HTTP server that answers 'pong' on every path."""
    handler = kmock.RawHandler()
    handler.fallback << b"pong"
    with serving(handler) as url:
        yield url


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, echo_server: str) -> Path:
    """A stand-in kubectl first on PATH whose port-forwards reach `echo_server`."""
    target = echo_server.split("://", 1)[1]
    log = install_kubectl(
        tmp_path / "bin",
        {"svc/ml-pipeline-ui": target, "svc/istio-ingressgateway": target},
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    return log


# ---- URLs


@pytest.mark.parametrize("version", ["v1.0", "v0.1"])
def test_seldon_url_carries_namespace_and_name(version: str) -> None:
    address = serving_address(
        "http://localhost:7777/",
        "seldon",
        namespace="kubeflow",
        name="mnist-classifier",
        model_name="mnist-classifier",
        api_version=version,
    )
    expected = f"http://localhost:7777/seldon/kubeflow/mnist-classifier/api/{version}/predictions"
    assert address.url == expected
    assert address.headers() == {}


def test_an_unknown_seldon_api_version_is_refused() -> None:
    with pytest.raises(ClusterError, match=r"v1\.0, v0\.1"):
        serving_address(
            "http://gw", "seldon", namespace="ns", name="m", model_name="m", api_version="v2"
        )


def test_kserve_address_is_the_v2_path_routed_by_the_service_host() -> None:
    address = serving_address(
        "https://kubeflow.example.org",
        "kserve",
        namespace="team-a",
        name="mnist-classifier",
        model_name="mnist",
        status_url="http://mnist-classifier.team-a.svc.example.org",
    )
    assert address.url == "https://kubeflow.example.org/v2/models/mnist/infer"
    assert address.headers() == {"Host": "mnist-classifier.team-a.svc.example.org"}


def test_kserve_host_defaults_to_kserves_example_domain() -> None:
    address = serving_address(
        "http://localhost:7777", "kserve", namespace="kubeflow", name="m", model_name="m"
    )
    assert address.host == "m.kubeflow.example.com"


@pytest.mark.parametrize(
    ("serving_kind", "status", "expected"),
    [
        ("seldon", {}, ("m-default", 8000)),
        ("kserve", {}, ("m-predictor", 80)),
        (
            "kserve",
            {"address": {"url": "http://m-predictor.ns.svc.cluster.local"}},
            ("m-predictor", 80),
        ),
        (
            "seldon",
            {"address": {"url": "http://m-main.ns.svc.cluster.local:8001/api/v1.0/predictions"}},
            ("m-main", 8001),
        ),
    ],
)
def test_the_models_own_service_comes_from_its_status_or_naming(
    serving_kind: str, status: dict[str, object], expected: tuple[str, int]
) -> None:
    assert model_service(serving_kind, "m", status) == expected


# ---- authentication


def test_a_token_is_sent_as_a_bearer_header() -> None:
    auth = Auth.from_settings(Settings(kfp_token=TOKEN))
    assert auth.headers() == {"Authorization": f"Bearer {TOKEN}"}


def test_a_cookie_is_sent_whole() -> None:
    auth = Auth.from_settings(Settings(kfp_cookie=COOKIE))
    assert auth.headers() == {"Cookie": COOKIE}


def test_a_cookie_without_its_name_is_refused_with_an_example() -> None:
    with pytest.raises(ClusterError, match="oauth2_proxy_kubeflow=<value>"):
        Auth.from_settings(Settings(kfp_cookie="cookie-81d2e4"))


def test_credentials_never_show_in_repr_or_messages() -> None:
    auth = Auth(token=TOKEN, cookie=COOKIE)
    message = auth_failure_message("http://gw/pipeline", 401, auth)
    assert TOKEN not in repr(auth) + message
    assert "cookie-81d2e4" not in repr(auth) + message


def test_a_401_without_credentials_says_how_to_log_in() -> None:
    message = auth_failure_message("http://gw/pipeline/apis/v2beta1/healthz", 401, Auth())
    assert "we sent no credentials (the gateway wants a login)" in message
    assert "HK_KUBEFLOW_USERNAME and HK_KUBEFLOW_PASSWORD" in message
    assert "HK_KFP_COOKIE" in message and "HK_KFP_TOKEN" in message


# ---- endpoints


def test_the_kfp_endpoint_setting_wins() -> None:
    settings = Settings(kfp_endpoint="http://kfp:8888", gateway_url="http://gw")
    with kfp_endpoint(settings) as url:
        assert url == "http://kfp:8888"


def test_through_the_gateway_the_kfp_api_is_under_pipeline() -> None:
    with kfp_endpoint(Settings(gateway_url="http://gw:8080")) as url:
        assert url == "http://gw:8080/pipeline"


def test_descriptions_name_the_port_forward_without_starting_it(kubectl: Path) -> None:
    assert "svc/ml-pipeline-ui -n kubeflow" in describe_kfp_endpoint("", "")
    assert "svc/istio-ingressgateway -n istio-system" in describe_gateway("")
    assert kubectl_calls(kubectl) == []


def test_without_an_endpoint_the_task_port_forwards_to_the_pipelines_ui(
    kubectl: Path, tmp_path: Path
) -> None:
    settings = Settings(kubeconfig=tmp_path / "kubeconfig", kube_context="kind-hk")
    with kfp_endpoint(settings) as url:
        assert requests.get(url + "/apis/v2beta1/healthz", timeout=5).text == "pong"
    [call] = kubectl_calls(kubectl)
    assert call[:2] == ["port-forward", "svc/ml-pipeline-ui"]
    assert call[2].endswith(":80")
    assert call[3:5] == ["-n", "kubeflow"]
    assert call[-4:] == ["--kubeconfig", str(tmp_path / "kubeconfig"), "--context", "kind-hk"]


def test_a_kubeconfig_path_list_reaches_the_port_forward_as_kubeconfig_not_a_flag(
    kubectl: Path, tmp_path: Path
) -> None:
    """kubectl's --kubeconfig takes one file: `a:b` there would be a file that does not exist."""
    paths = f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}"
    with kfp_endpoint(Settings(kubeconfig=Path(paths))) as url:
        assert requests.get(url + "/apis/v2beta1/healthz", timeout=5).text == "pong"
    [call] = kubectl_calls(kubectl)
    assert "--kubeconfig" not in call


def test_the_port_forward_stops_when_the_task_is_done(kubectl: Path) -> None:
    with gateway(Settings()) as url:
        port = int(url.rsplit(":", 1)[1])
        assert requests.get(url + "/seldon/x", timeout=5).text == "pong"
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_without_kubectl_the_error_says_to_install_it_or_set_an_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(PrerequisiteError, match=r"kubectl is not on PATH.*HK_KFP_ENDPOINT"),
        kfp_endpoint(Settings()),
    ):
        pass


def test_a_port_forward_that_fails_quotes_kubectl(kubectl: Path) -> None:
    with (
        pytest.raises(ClusterError, match='services "svc/nothing" not found'),
        port_forward("svc/nothing", "default", 80),
    ):
        pass
