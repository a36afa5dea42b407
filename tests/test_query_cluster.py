"""`inv query --mode cluster` against an emulated gateway (and cluster) over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from emulators import (
    KSERVE,
    POLICIES,
    SELDON,
    ClusterEmulator,
    RunningCluster,
    install_kubectl,
    kubectl_calls,
    serving,
    write_kubeconfig,
)
from rbac_support import KUBEFLOW_EXAMPLE, aggregated, calls_of, kubeflow_roles, refused

from hello_kubeflow.errors import EndpointError, PrerequisiteError, SanityCheckError
from hello_kubeflow.query.client import QueryResult
from hello_kubeflow.query.cluster import query_cluster
from hello_kubeflow.settings import Settings

TOKEN = "tok-c4f00d"
PROBABILITIES = [0.01] * 9 + [0.91]
SELDON_PATH = "/seldon/kubeflow/mnist-classifier/api/v1.0/predictions"
DIRECT_PATH = "/api/v1.0/predictions"  # Seldon's predictor service, no gateway
V2_PATH = "/v2/models/mnist-classifier/infer"
KSERVE_HOST = "mnist-classifier.kubeflow.example.com"
needs_kubeflow = pytest.mark.skipif(
    not KUBEFLOW_EXAMPLE.is_file(),
    reason=f"Kubeflow 26.03's rendered manifests are not at {KUBEFLOW_EXAMPLE} "
    "(HK_TEST_UPSTREAM_DIR)",
)


class Gateway:
    """The Istio gateway in front of the served model: routes, checks the login, answers."""

    def __init__(self) -> None:
        self.handler = kmock.RawHandler()
        self.handler.fallback << self._route
        self.posts: list[dict[str, Any]] = []
        self.token: str | None = None
        self.login_redirect = False
        self.kserve_host = KSERVE_HOST
        self.kserve_prefix = ""
        # In a Kubeflow profile namespace the mesh-wide deny-all (kubeflow/manifests 26.03,
        # AuthorizationPolicy istio-system/global-deny-all, `spec: {}`) makes the predictor's
        # sidecar refuse everything its own AuthorizationPolicy does not allow, with Envoy's
        # RBAC filter's answer (envoyproxy/envoy source/extensions/filters/http/rbac/
        # rbac_filter.cc: 403 "RBAC: access denied"). None: no such policy in the way.
        self.sidecar_allows: Callable[[], bool] | None = None

    def _route(self, request: Any) -> kmock.Response:
        if self.login_redirect:
            return kmock.Response(status=302, headers={"Location": "/dex/auth?x=1"}, payload=b"")
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return kmock.Response(status=401, payload=b"Origin authentication failed.")
        path, method = request.url.path, str(request.method.value)
        to_kserve = request.headers.get("Host") == self.kserve_host and path.startswith(
            self.kserve_prefix + "/"
        )
        if to_kserve and self.sidecar_allows is not None and not self.sidecar_allows():
            return kmock.Response(status=403, payload=b"RBAC: access denied")
        if method != "POST":
            return kmock.Response(status=405, payload=b"method not allowed")
        self.posts.append({"path": path, "headers": dict(request.headers), "body": request.data})
        if path in (SELDON_PATH, DIRECT_PATH):
            names = [f"class:{d}" for d in range(10)]
            answer = {"data": {"names": names, "ndarray": [PROBABILITIES]}, "meta": {}}
            return kmock.Response(status=200, payload=answer)
        if to_kserve and path.removeprefix(self.kserve_prefix) == V2_PATH:
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


def test_without_a_kubeconfig_or_gateway_address_the_query_stops_before_kubectl(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `inv status` does: one message, no `kubectl port-forward` printing klog errors."""
    emulated, url = gateway
    log = install_kubectl(tmp_path / "bin", {"svc/istio-ingressgateway": url.split("://")[1]})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    settings = _settings(mnist_dir, kubeconfig=tmp_path / "absent")

    with pytest.raises(PrerequisiteError) as raised:
        query_cluster(settings, index=3)

    said = str(raised.value)
    assert f"no kubeconfig found at {tmp_path / 'absent'}" in said
    assert "KUBECONFIG" in said and "HK_GATEWAY_URL" in said
    assert kubectl_calls(log) == []
    assert emulated.posts == []


def test_a_cluster_that_may_not_be_asked_is_still_queried_through_its_gateway(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kubeconfig whose user may not read the model: HK_SERVING decides, the gateway answers."""
    _, url = gateway
    log = install_kubectl(tmp_path / "bin", {"svc/istio-ingressgateway": url.split("://")[1]})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with RunningCluster() as cluster:
        cluster.fail(lambda request: True, times=100, status=403)
        settings = _settings(mnist_dir, kubeconfig=cluster.kubeconfig(tmp_path))
        result = query_cluster(settings, index=3)

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


# ---- KServe in a profile namespace

PATH_URL = "http://example.com/serving/kubeflow/mnist-classifier"  # KServe's, with pathTemplate


def _kserve_in_a_profile(
    cluster: ClusterEmulator, status_url: str = PATH_URL, namespace: str = "kubeflow"
) -> None:
    """An InferenceService KServe reports path-based, and Istio's policy type installed.

    `status.url` and `status.deploymentMode` are the InferenceService CRD's
    status fields (kserve/kserve v0.20.0, ../shared/upstream/kserve-v0.20.0/
    kserve-crds.yaml, CRD inferenceservices.serving.kserve.io). The values are
    Kubeflow's: its ConfigMap kubeflow/inferenceservice-config (kubeflow/manifests
    26.03, ../shared/upstream/kubeflow-manifests-26.03/example.yaml) sets
    `deploy.defaultDeploymentMode` to "Serverless" and, in `ingress`,
    `ingressDomain` "example.com", `urlScheme` "http" and `pathTemplate`
    "/serving/{{ .Namespace }}/{{ .Name }}", which gives PATH_URL.
    """
    cluster.declare(SELDON, KSERVE, POLICIES)
    cluster.objects[KSERVE, namespace, "mnist-classifier"] = {
        "metadata": {"name": "mnist-classifier", "namespace": namespace},
        "status": {"url": status_url, "deploymentMode": "Serverless"},
    }


def _policy_reaches_envoy_after(cluster: ClusterEmulator, refusals: int) -> Callable[[], bool]:
    """True once our policy is stored and `refusals` more requests were refused (propagation)."""
    left = [refusals]

    def allows() -> bool:
        if cluster.stored(POLICIES, "kubeflow", "allow-mnist-classifier") is None:
            return False
        left[0] -= 1
        return left[0] < 0

    return allows


def test_kserve_in_a_profile_gets_its_policy_and_the_query_waits_out_the_403(
    gateway: tuple[Gateway, str],
    mnist_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The manifests' tests' policy is made; the 403 until Istio applies it is waited out."""
    monkeypatch.setattr("hello_kubeflow.deploy.kserve_access.ACCESS_POLL", 0.01)
    caplog.set_level("INFO")
    emulated, url = gateway
    emulated.kserve_host, emulated.kserve_prefix = (
        "example.com",
        "/serving/kubeflow/mnist-classifier",
    )
    cluster = ClusterEmulator()
    _kserve_in_a_profile(cluster)
    emulated.sidecar_allows = _policy_reaches_envoy_after(cluster, 2)
    with serving(cluster) as cluster_url:
        settings = _settings(
            mnist_dir,
            gateway_url=url,
            serving="auto",
            kubeconfig=write_kubeconfig(tmp_path / "k", cluster_url),
        )
        result = query_cluster(settings, index=0)
        policy = cluster.stored(POLICIES, "kubeflow", "allow-mnist-classifier")

    assert isinstance(result, QueryResult) and result.protocol == "v2"
    assert policy is not None
    assert policy["spec"]["selector"] == {
        "matchLabels": {"serving.kserve.io/inferenceservice": "mnist-classifier"}
    }
    assert emulated.posts[0]["path"] == "/serving/kubeflow/mnist-classifier" + V2_PATH
    assert emulated.posts[0]["headers"]["Host"] == "example.com"
    assert "still answers 403 (RBAC: access denied)" in caplog.text
    assert "Knative mode" in caplog.text  # the status says Serverless: the old name


def test_a_policy_istio_never_applies_fails_naming_the_policy_to_check(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hello_kubeflow.deploy.kserve_access.ACCESS_POLL", 0.01)
    emulated, url = gateway
    emulated.kserve_host, emulated.kserve_prefix = (
        "example.com",
        "/serving/kubeflow/mnist-classifier",
    )
    emulated.sidecar_allows = lambda: False
    cluster = ClusterEmulator()
    _kserve_in_a_profile(cluster)
    with serving(cluster) as cluster_url:
        settings = _settings(
            mnist_dir,
            gateway_url=url,
            serving="auto",
            access_wait=0.2,
            kubeconfig=write_kubeconfig(tmp_path / "k", cluster_url),
        )
        with pytest.raises(EndpointError) as raised:
            query_cluster(settings, index=0)

    said = str(raised.value)
    assert 'still answers 403 "RBAC: access denied" after 0 s' in said
    assert "kubectl get authorizationpolicy -n kubeflow allow-mnist-classifier" in said
    assert "HK_ACCESS_WAIT" in said
    assert emulated.posts == []


def test_without_a_kubeconfig_a_kserve_403_says_the_policy_is_missing(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path
) -> None:
    emulated, url = gateway
    emulated.sidecar_allows = lambda: False
    settings = _settings(mnist_dir, gateway_url=url, serving="kserve", kubeconfig=tmp_path / "none")

    with pytest.raises(EndpointError) as raised:
        query_cluster(settings, index=0)

    said = str(raised.value)
    assert "answered 403" in said
    assert "lacks its Istio AuthorizationPolicy" in said
    assert "serving.kserve.io/inferenceservice=mnist-classifier in kubeflow" in said


@needs_kubeflow
def test_in_a_kubeflow_profile_its_users_may_make_every_call_the_query_makes_there(
    gateway: tuple[Gateway, str], mnist_dir: Path, tmp_path: Path
) -> None:
    """Kubeflow 26.03's kubeflow-edit with our aggregated roles covers the query's calls.

    The profile's owner holds kubeflow-admin, which aggregates kubeflow-edit, and
    default-editor holds kubeflow-edit. What the query reads outside the profile
    namespace (KServe's controller and ConfigMap, Istio's gateway Service) it
    reads only if it may.
    """
    namespace = "kubeflow-user-example-com"
    emulated, url = gateway
    emulated.kserve_host, emulated.kserve_prefix = (
        "example.com",
        f"/serving/{namespace}/mnist-classifier",
    )
    cluster = ClusterEmulator()
    _kserve_in_a_profile(cluster, PATH_URL.replace("/kubeflow/", f"/{namespace}/"), namespace)
    with serving(cluster) as cluster_url:
        settings = _settings(
            mnist_dir,
            gateway_url=url,
            serving="auto",
            namespace=namespace,
            kubeconfig=write_kubeconfig(tmp_path / "k", cluster_url),
        )
        query_cluster(settings, index=0)
    made = {
        call for request in cluster if request.namespace == namespace for call in calls_of(request)
    }

    assert ("security.istio.io", "authorizationpolicies", "patch", "allow-mnist-classifier") in made
    assert ("serving.kserve.io", "inferenceservices", "get", "mnist-classifier") in made
    assert refused(aggregated(kubeflow_roles(), "kubeflow-edit"), made) == []
    without = kubeflow_roles(without=["hello-kubeflow-kserve-policy-edit"])
    assert {c[1] for c in refused(aggregated(without, "kubeflow-edit"), made)} == {
        "authorizationpolicies"
    }
