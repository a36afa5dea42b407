"""Logging in through emulated Dex and oauth2-proxy (Kubeflow 26.03) and using the session.

`inv train --mode cluster` and `inv query --mode cluster` through Kubeflow's
gateway: the KFP emulator behind `/pipeline`, our real model server behind
Seldon's and KServe's routes, everything over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from emulators import RunningCluster, install_kubectl, kubectl_calls, serving
from kfp_emulator import KfpEmulator
from kubeflow_gateway import COOKIE, KIND_OVERLAY_ISSUERS, KubeflowGateway, jwt
from serving_support import make_tiny_model

from hello_kubeflow.errors import EndpointError, KfpError, LoginError
from hello_kubeflow.gateway.login import dex_login
from hello_kubeflow.kfp.cluster_run import plan, train_on_cluster
from hello_kubeflow.kfp.remote import Patience
from hello_kubeflow.pipeline.local import RunOptions
from hello_kubeflow.query.client import QueryResult
from hello_kubeflow.query.cluster import query_cluster
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import Settings

USER, PASSWORD = "user@example.com", "12341234"
PROFILE = "kubeflow-user-example-com"
IMAGE = "localhost:5000/hello-kubeflow@sha256:" + "5e" * 32
FAST = Patience(
    request_timeout=5.0, retry_deadline=3.0, retry_initial_wait=0.01, poll_interval=0.01
)
OPTIONS = RunOptions(preset="book", n_estimators=30, seed=7, train_limit=500, test_limit=100)


@dataclass
class Front:
    """The gateway (with Dex and oauth2-proxy) and the KFP emulator behind it."""

    gateway: KubeflowGateway
    kfp: KfpEmulator
    url: str


@pytest.fixture
def front() -> Iterator[Front]:
    kfp = KfpEmulator()
    kfp.multi_user = True
    with serving(kfp.handler) as kfp_url:
        gateway = KubeflowGateway(kfp=kfp_url)
        with gateway.serve() as url:
            yield Front(gateway, kfp, url)


def _settings(tmp_path: Path, url: str, **changes: object) -> Settings:
    base = Settings(
        output_dir=tmp_path / "outputs",
        pipeline_image=IMAGE,
        gateway_url=url,
        namespace=PROFILE,
        kubeconfig=tmp_path / "no-kubeconfig",
        serving="seldon",
        kubeflow_username=USER,
        kubeflow_password=PASSWORD,
    )
    return base.replace(**changes)


def _never_shown(
    secrets: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    shown = capsys.readouterr()
    for secret in secrets:
        assert secret not in shown.out + shown.err + caplog.text


# ---- the login itself


def test_the_login_follows_dex_and_oauth2_proxy_to_the_session_cookie(front: Front) -> None:
    session = dex_login(front.url, USER, PASSWORD)

    name, _, value = session.cookie.partition("=")
    assert name == COOKIE and value in front.gateway.sessions
    paths = [r["path"] for r in front.gateway.seen]
    assert paths[:6] == [
        "/oauth2/start",
        "/dex/auth",
        "/dex/auth/local",
        "/dex/auth/local/login",
        "/dex/auth/local/login",
        "/oauth2/callback",
    ]
    assert session.round_trips == len(front.gateway.seen)


def test_a_wrong_password_is_refused_by_name_without_showing_it(front: Front) -> None:
    with pytest.raises(LoginError) as raised:
        dex_login(front.url, USER, "not-the-password")

    assert f"refused the login of {USER!r}" in str(raised.value)
    assert "HK_KUBEFLOW_PASSWORD" in str(raised.value)
    assert "not-the-password" not in str(raised.value)


def test_the_username_alone_is_an_error_naming_the_missing_password(
    front: Front, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, front.url, kubeflow_password=None)

    with pytest.raises(LoginError, match="HK_KUBEFLOW_PASSWORD is not set"):
        train_on_cluster(settings, OPTIONS, patience=FAST)


def test_a_gateway_that_is_not_kubeflows_is_told_apart(tmp_path: Path) -> None:
    other = KubeflowGateway()
    with other.serve() as url, pytest.raises(LoginError, match="did not lead to Dex's login form"):
        dex_login(url + "/not-here", USER, PASSWORD)


# ---- inv train --mode cluster through the gateway


def test_the_dry_run_names_the_login_and_contacts_nothing(front: Front, tmp_path: Path) -> None:
    shown = plan(_settings(tmp_path, front.url), OPTIONS)

    assert shown.auth.startswith(f"a Dex login as {USER}")
    assert PASSWORD not in shown.describe() + json.dumps(shown.as_dict())
    assert front.gateway.seen == []


def test_a_cluster_run_through_the_gateway_logs_in_and_uses_the_session(
    front: Front,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")

    summary = train_on_cluster(_settings(tmp_path, front.url), OPTIONS, patience=FAST)

    assert summary.state == "SUCCEEDED"
    api_calls = [r for r in front.gateway.seen if r["path"].startswith("/pipeline/")]
    assert api_calls and all(r["cookies"].get(COOKIE) for r in api_calls)
    # Behind the gateway, KFP sees who we are (dex-jwt's outputClaimToHeaders).
    assert {r["headers"].get("kubeflow-userid") for r in front.kfp.seen} == {USER}
    [experiment] = front.kfp.experiments.values()
    assert experiment["namespace"] == PROFILE
    cookies = [r["cookies"][COOKIE] for r in api_calls]
    _never_shown([PASSWORD, *cookies], capsys, caplog)


def test_a_service_account_token_is_refused_by_the_gateway_and_the_message_says_why(
    front: Front, tmp_path: Path
) -> None:
    """Kubeflow 26.03's gateway trusts only Dex's issuer for bearer tokens."""
    token = jwt({"iss": "https://kubernetes.default.svc.cluster.local", "sub": "default-editor"})
    settings = _settings(tmp_path, front.url, kfp_token=token)

    with pytest.raises(KfpError) as raised:
        train_on_cluster(settings, OPTIONS, patience=FAST)

    message = str(raised.value)
    assert "answered 401" in message
    assert "service account token is refused there" in message
    assert "HK_KUBEFLOW_USERNAME and HK_KUBEFLOW_PASSWORD" in message
    assert token not in message


def test_a_clusters_token_of_another_issuer_says_the_issuers_must_match_and_how(
    front: Front, tmp_path: Path
) -> None:
    """`kubectl create token` of a cluster the gateway does not trust: the issuer is named."""
    token = front.gateway.issue_service_account_token(
        "https://kubernetes.default.svc.cluster.local", PROFILE, "default-editor"
    )
    settings = _settings(tmp_path, front.url, kfp_token=token)

    with pytest.raises(KfpError) as raised:
        train_on_cluster(settings, OPTIONS, patience=FAST)

    message = str(raised.value)
    assert "answered 401" in message
    assert (
        f"Kubernetes service account token (system:serviceaccount:{PROFILE}:default-editor) "
        "of issuer https://kubernetes.default.svc.cluster.local" in message
    )
    assert "--service-account-issuer" in message
    assert "service-account-issuer https://kubernetes.default.svc as docs/cluster.md" in message
    assert "m2m-dex-and-kind" in message and "m2m-token-issuer" in message
    assert token not in message


def test_with_the_kind_overlay_a_token_of_another_clusters_issuer_is_still_refused(
    front: Front, tmp_path: Path
) -> None:
    front.gateway.trusted_issuers = KIND_OVERLAY_ISSUERS
    eks = "https://oidc.eks.eu-central-1.amazonaws.com/id/0A1B2C3D"
    token = front.gateway.issue_service_account_token(eks, PROFILE, "default-editor")
    settings = _settings(tmp_path, front.url, kfp_token=token)

    with pytest.raises(KfpError, match=f"of issuer {eks}, and the gateway trusts"):
        train_on_cluster(settings, OPTIONS, patience=FAST)


def test_with_the_kind_overlay_a_token_of_the_kind_clusters_issuer_runs(
    front: Front, tmp_path: Path
) -> None:
    """The cluster docs/cluster.md makes (issuer https://kubernetes.default.svc) gets in."""
    front.gateway.trusted_issuers = KIND_OVERLAY_ISSUERS
    token = front.gateway.issue_service_account_token(
        "https://kubernetes.default.svc", PROFILE, "default-editor"
    )
    settings = _settings(tmp_path, front.url, kfp_token=token)

    assert train_on_cluster(settings, OPTIONS, patience=FAST).state == "SUCCEEDED"
    assert {r["headers"].get("kubeflow-userid") for r in front.kfp.seen} == {
        f"system:serviceaccount:{PROFILE}:default-editor"
    }


def test_an_expired_token_says_when_it_expired(front: Front, tmp_path: Path) -> None:
    token = jwt({"iss": "https://kubernetes.default.svc", "sub": "x", "exp": 1700000000})
    settings = _settings(tmp_path, front.url, kfp_token=token)

    with pytest.raises(KfpError, match=r"expired at 2023-11-14 22:13 UTC.*kubectl create token"):
        train_on_cluster(settings, OPTIONS, patience=FAST)


def test_a_dex_token_is_accepted_as_a_bearer_token(front: Front, tmp_path: Path) -> None:
    token = front.gateway.issue_dex_token(USER)
    settings = _settings(tmp_path, front.url, kfp_token=token)

    assert train_on_cluster(settings, OPTIONS, patience=FAST).state == "SUCCEEDED"
    assert not any(r["path"].startswith(("/dex/", "/oauth2/")) for r in front.gateway.seen)


def test_no_login_at_all_is_a_401_that_says_how_to_log_in(front: Front, tmp_path: Path) -> None:
    settings = _settings(tmp_path, front.url, kubeflow_username=None, kubeflow_password=None)

    with pytest.raises(KfpError, match=r"answered 401.*HK_KUBEFLOW_USERNAME"):
        train_on_cluster(settings, OPTIONS, patience=FAST)


# ---- inv query --mode cluster through the gateway, both serving systems


@pytest.fixture(scope="module")
def model_dir(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(mnist_dir, tmp_path_factory.mktemp("model"))


@pytest.mark.parametrize("serving_kind", ["seldon", "kserve"])
def test_the_model_is_queried_through_the_gateway_with_the_dex_session(
    serving_kind: str,
    model_dir: Path,
    mnist_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seldon at /seldon/<ns>/<name>/api/v1.0/predictions, KServe by Host; same sanity check."""
    with running_server(Settings(serve_port=0, serve_host="127.0.0.1"), model_dir) as server:
        gateway = KubeflowGateway(model=server.url)
        with gateway.serve() as url:
            settings = _settings(tmp_path, url, serving=serving_kind, mnist_dir=mnist_dir)
            result = query_cluster(settings, index=4)

    assert isinstance(result, QueryResult)
    if serving_kind == "seldon":
        assert result.url == f"{url}/seldon/{PROFILE}/mnist-classifier/api/v1.0/predictions"
    else:
        assert result.protocol == "v2"
    posts = [r for r in gateway.seen if r["method"] == "POST" and not r["path"].startswith("/dex")]
    assert posts and all(r["cookies"].get(COOKIE) for r in posts)
    _never_shown([PASSWORD, *gateway.sessions], capsys, caplog)


@pytest.mark.parametrize("serving_kind", ["seldon", "kserve"])
def test_the_model_is_queried_through_a_port_forward_to_the_gateway_with_the_session(
    serving_kind: str,
    model_dir: Path,
    mnist_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No HK_GATEWAY_URL: the task forwards to svc/istio-ingressgateway and logs in there.

    The kubeconfig's user may not read the served model (403), so HK_SERVING decides.
    """
    with (
        running_server(Settings(serve_port=0, serve_host="127.0.0.1"), model_dir) as server,
        RunningCluster() as cluster,
    ):
        cluster.fail(lambda request: True, times=100, status=403)
        gateway = KubeflowGateway(model=server.url)
        with gateway.serve() as url:
            log = install_kubectl(
                tmp_path / "bin", {"svc/istio-ingressgateway": url.split("://")[1]}
            )
            monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
            settings = _settings(
                tmp_path,
                url,
                gateway_url=None,
                kubeconfig=cluster.kubeconfig(tmp_path),
                serving=serving_kind,
                mnist_dir=mnist_dir,
            )
            result = query_cluster(settings, index=1)

    assert isinstance(result, QueryResult)
    assert kubectl_calls(log)[0][1] == "svc/istio-ingressgateway"
    assert any(r["path"] == "/oauth2/callback" for r in gateway.seen)


def test_a_query_without_a_login_is_refused_with_how_to_log_in(
    model_dir: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    gateway = KubeflowGateway(model="http://127.0.0.1:9")
    with gateway.serve() as url:
        settings = _settings(
            tmp_path, url, kubeflow_username=None, kubeflow_password=None, mnist_dir=mnist_dir
        )
        with pytest.raises(EndpointError, match=r"answered 401.*HK_KUBEFLOW_USERNAME"):
            query_cluster(settings, index=1)


def test_a_token_that_is_not_a_jwt_is_called_so(front: Front, tmp_path: Path) -> None:
    settings = _settings(tmp_path, front.url, kfp_token="'abc123'")

    with pytest.raises(KfpError, match=r"HK_KFP_TOKEN is not a JWT"):
        train_on_cluster(settings, OPTIONS, patience=FAST)
