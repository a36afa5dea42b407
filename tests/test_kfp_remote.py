"""The real `kfp.Client` against an emulated Kubeflow Pipelines API over real HTTP."""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import kmock
import pytest
from emulators import serving
from kfp_emulator import (
    STEPS,
    KfpEmulator,
    Snapshot,
    canceled,
    check_answer,
    failing,
    never_ending,
    write_package,
)

from hello_kubeflow.errors import KfpError, RunFailedError
from hello_kubeflow.gateway.endpoints import Auth
from hello_kubeflow.http_client import CONNECT_TIMEOUT
from hello_kubeflow.kfp._kfp_private import REST_CLIENT, add_default_timeout
from hello_kubeflow.kfp.remote import KfpSession, Patience, connect
from hello_kubeflow.kfp.runs import (
    FailedStep,
    PipelineRef,
    ensure_experiment,
    follow_run,
    start_run,
    upload_pipeline,
)

FAST = Patience(
    request_timeout=5.0, retry_deadline=3.0, retry_initial_wait=0.01, poll_interval=0.01
)
TOKEN = "tok-5be1c0d2"
PIPELINE = "hello-kubeflow-mnist"


@pytest.fixture
def kfp() -> Iterator[tuple[KfpEmulator, str]]:
    """The emulated KFP API and its base URL."""
    emulator = KfpEmulator()
    with serving(emulator.handler) as url:
        yield emulator, url


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return write_package(tmp_path / "pipeline.yaml", PIPELINE)


def _run_playing(
    script: list[Snapshot], kfp: tuple[KfpEmulator, str], package: Path
) -> tuple[KfpSession, str]:
    """A session, and a run it started whose backend plays `script`."""
    emulator, url = kfp
    emulator.script = script
    session = connect(url, Auth(), patience=FAST)
    return session, _started(session, package)


def _started(session: KfpSession, package: Path, **parameters: object) -> str:
    pipeline = upload_pipeline(session, package, PIPELINE)
    experiment = ensure_experiment(session, "hello-kubeflow")
    return start_run(
        session,
        experiment_id=experiment,
        pipeline=pipeline,
        run_name="a run",
        parameters=dict(parameters),
    )


# ---- runs


def test_a_successful_run_is_followed_step_by_step(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    _, url = kfp
    session = connect(url, Auth(), patience=FAST)
    run_id = _started(session, package)
    seen: list[tuple[str, str]] = []

    outcome = follow_run(
        session, run_id, timeout=30, steps=STEPS, on_step=lambda *change: seen.append(change)
    )

    assert outcome.state == "SUCCEEDED"
    assert seen[:3] == [
        ("load MNIST", "RUNNING"),
        ("load MNIST", "SUCCEEDED"),
        ("train model", "RUNNING"),
    ]
    assert outcome.steps["deploy model"] == "SUCCEEDED"


def test_the_run_gets_the_command_line_parameters_and_the_uploaded_version(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    emulator, url = kfp
    session = connect(url, Auth(), patience=FAST)

    run_id = _started(session, package, preset="book", n_estimators=30, seed=7)

    body = emulator.runs[run_id]["body"]
    assert body["runtime_config"]["parameters"] == {"preset": "book", "n_estimators": 30, "seed": 7}
    [version] = emulator.versions[body["pipeline_version_reference"]["pipeline_id"]]
    assert (
        body["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]
    )
    assert emulator.uploads == [package.read_bytes()]


def test_progress_is_reported_by_the_pipelines_display_names_only(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    """Drivers, DAGs and `executor` pods are Argo nodes the backend reports, not steps."""
    _, url = kfp
    session = connect(url, Auth(), patience=FAST)
    seen: list[str] = []

    outcome = follow_run(
        session,
        _started(session, package),
        timeout=30,
        steps=STEPS,
        on_step=lambda name, _: seen.append(name),
    )

    assert set(seen) == set(STEPS.values())
    assert list(outcome.steps) == list(STEPS.values())


def test_a_failed_run_names_the_failing_step_by_its_display_name(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    session, run_id = _run_playing(failing("train"), kfp, package)

    with pytest.raises(RunFailedError) as raised:
        follow_run(session, run_id, timeout=30, steps=STEPS)

    message = str(raised.value)
    assert f"run {run_id} FAILED at step 'train model'" in message
    assert "executor" not in message
    assert session.run_url(run_id) in message


def test_a_failed_step_is_explained_with_its_executor_node(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    """The node handed over is the executor's, whose pod holds the step's log."""
    emulator = kfp[0]
    session, run_id = _run_playing(failing("evaluate"), kfp, package)
    asked: list[FailedStep] = []

    def explain(step: FailedStep) -> str:
        asked.append(step)
        return "Pod kubeflow/x: OOMKilled, exit code 137"

    with pytest.raises(RunFailedError, match="OOMKilled, exit code 137"):
        follow_run(session, run_id, timeout=30, steps=STEPS, explain_failure=explain)

    workflow = emulator.runs[run_id]["workflow"]
    executor = emulator.node_id(run_id, f"{workflow}.root.evaluate.executor")
    assert asked == [FailedStep("evaluate on test set", "evaluate", executor)]


def test_a_canceled_run_ends_the_wait_with_an_error(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    """The SDK's own wait never returns for CANCELED; ours stops and says so."""
    session, run_id = _run_playing(canceled(), kfp, package)

    with pytest.raises(RunFailedError, match="CANCELED during step 'train model'"):
        follow_run(session, run_id, timeout=30, steps=STEPS)


def test_a_run_that_outlasts_the_timeout_is_an_error_with_its_url(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    session, run_id = _run_playing(never_ending(), kfp, package)

    with pytest.raises(RunFailedError, match="did not finish within 0 s") as raised:
        follow_run(session, run_id, timeout=0.2, steps=STEPS)
    assert "load MNIST not done" in str(raised.value)
    assert session.run_url(run_id) in str(raised.value)


def test_a_skipped_run_is_not_a_success(kfp: tuple[KfpEmulator, str], package: Path) -> None:
    session, run_id = _run_playing([Snapshot("SKIPPED")], kfp, package)

    with pytest.raises(RunFailedError, match="ended SKIPPED"):
        follow_run(session, run_id, timeout=30, steps=STEPS)


# ---- an API that is not there, or not yet


def test_an_api_answering_503_for_a_while_is_waited_for(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    emulator, url = kfp
    emulator.unavailable = 3  # healthz answers 503 three times
    session = connect(url, Auth(), patience=FAST)
    run_id = _started(session, package)
    emulator.unavailable = 2  # then the run's status, twice, mid-run

    assert follow_run(session, run_id, timeout=30, steps=STEPS).state == "SUCCEEDED"
    assert emulator.unavailable == 0


def test_run_creation_answered_503_is_retried_and_makes_one_run(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    emulator, url = kfp
    session = connect(url, Auth(), patience=FAST)
    emulator.unavailable_paths = re.compile(r".*/runs")
    emulator.unavailable = 1

    _started(session, package)

    assert len(emulator.requests_to(r".*/runs")) == 2
    assert len(emulator.runs) == 1


def test_run_creation_answered_502_is_not_retried_lest_it_run_twice(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    """A 502 may come after the API server created the run: retrying could start a second."""
    emulator, url = kfp
    session = connect(url, Auth(), patience=FAST)
    emulator.unavailable_paths = re.compile(r".*/runs")
    emulator.unavailable_status = 502
    emulator.unavailable = 1

    with pytest.raises(KfpError, match="creating run a run: the API answered 502"):
        _started(session, package)
    assert len(emulator.requests_to(r".*/runs")) == 1


def test_an_api_down_for_good_is_an_error_naming_the_endpoint(
    kfp: tuple[KfpEmulator, str],
) -> None:
    emulator, url = kfp
    emulator.unavailable = 10_000
    patience = Patience(retry_deadline=0.3, retry_initial_wait=0.01)

    with pytest.raises(KfpError, match=f"{url} is not reachable: it answered 503"):
        connect(url, Auth(), patience=patience)


def test_nothing_listening_is_an_error_saying_what_to_check() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    with pytest.raises(KfpError, match=f"{url} is not reachable.*inv status"):
        connect(url, Auth(), patience=Patience(retry_deadline=0.3, retry_initial_wait=0.01))


def test_a_host_that_does_not_resolve_fails_at_once_without_claiming_a_wait() -> None:
    """Not retried (it does not heal), so the message must not say it waited 60 s."""
    with pytest.raises(KfpError) as raised:
        connect("http://kfp.invalid", Auth(), patience=Patience(retry_deadline=60))

    message = str(raised.value)
    assert "http://kfp.invalid is not reachable: it cannot connect" in message
    assert "for 60 s" not in message and "inv status" in message


def test_a_server_that_is_not_kfp_is_told_apart() -> None:
    handler = kmock.RawHandler()
    handler.fallback << kmock.Response(status=404, payload=b"404 page not found")
    with serving(handler) as url, pytest.raises(KfpError, match="not a Kubeflow Pipelines v2 API"):
        connect(url, Auth(), patience=FAST)


# ---- authentication


def test_the_token_goes_on_every_request(kfp: tuple[KfpEmulator, str], package: Path) -> None:
    emulator, url = kfp
    emulator.token = TOKEN
    session = connect(url, Auth(token=TOKEN), patience=FAST)
    follow_run(session, _started(session, package), timeout=30, steps=STEPS)

    assert {r["headers"].get("Authorization") for r in emulator.seen} == {f"Bearer {TOKEN}"}


def test_the_session_cookie_goes_on_every_request(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    emulator, url = kfp
    emulator.cookie = ("authservice_session", "sess-77aa")
    session = connect(url, Auth(cookie="authservice_session=sess-77aa"), patience=FAST)
    follow_run(session, _started(session, package), timeout=30, steps=STEPS)

    assert {r["cookies"].get("authservice_session") for r in emulator.seen} == {"sess-77aa"}


def test_a_refused_login_says_how_to_get_one_and_never_shows_the_token(
    kfp: tuple[KfpEmulator, str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator, url = kfp
    emulator.token = "the-right-token"

    with pytest.raises(KfpError) as raised:
        connect(url, Auth(token=TOKEN), patience=FAST)

    message = str(raised.value)
    assert "answered 401" in message and "HK_KFP_COOKIE" in message
    shown = capsys.readouterr()
    assert TOKEN not in message + shown.out + shown.err + caplog.text


def test_a_redirect_to_the_login_page_is_an_authentication_error() -> None:
    handler = kmock.RawHandler()
    handler.fallback << kmock.Response(
        status=302, headers={"Location": "/dex/auth?client_id=kubeflow-oidc"}, payload=b""
    )
    with serving(handler) as url, pytest.raises(KfpError, match="redirected to the login page"):
        connect(url + "/pipeline", Auth(), patience=FAST)


# ---- pipelines and experiments


def test_the_first_upload_is_already_a_version_named_by_the_package_digest(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    emulator, url = kfp
    session = connect(url, Auth(), patience=FAST)

    first = upload_pipeline(session, package, PIPELINE)

    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    assert first.uploaded and first.version_name == f"{PIPELINE}-{digest}"
    [version] = emulator.versions[first.pipeline_id]
    assert version["display_name"] == first.version_name
    assert version["pipeline_version_id"] == first.version_id


def test_a_changed_package_is_a_new_version_of_the_same_pipeline(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    emulator, url = kfp
    session = connect(url, Auth(), patience=FAST)

    first = upload_pipeline(session, package, PIPELINE)
    package.write_text(package.read_text() + "# changed\n")
    second = upload_pipeline(session, package, PIPELINE)

    assert second.uploaded and second.pipeline_id == first.pipeline_id
    assert second.version_id != first.version_id
    assert len(emulator.pipelines) == 1
    assert len(emulator.versions[first.pipeline_id]) == 2


def test_uploading_the_same_package_twice_adds_no_version(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    emulator, url = kfp
    session = connect(url, Auth(), patience=FAST)
    first = upload_pipeline(session, package, PIPELINE)

    again = upload_pipeline(session, package, PIPELINE)

    assert again == PipelineRef(first.pipeline_id, first.version_id, first.version_name, False)
    assert len(emulator.uploads) == 1
    assert len(emulator.versions[first.pipeline_id]) == 1


def test_a_pipeline_first_uploaded_by_the_old_client_gets_a_digest_version(
    kfp: tuple[KfpEmulator, str], package: Path
) -> None:
    """A pipeline whose only version is named after it (the SDK's upload) gains ours once."""
    emulator, url = kfp
    session = connect(url, Auth(), patience=FAST)
    session.client.upload_pipeline(str(package), pipeline_name=PIPELINE)

    ours = upload_pipeline(session, package, PIPELINE)
    again = upload_pipeline(session, package, PIPELINE)

    assert ours.uploaded and not again.uploaded
    names = [v["display_name"] for v in emulator.versions[ours.pipeline_id]]
    assert names == [ours.version_name, PIPELINE]


def test_the_experiment_is_created_once_then_found(kfp: tuple[KfpEmulator, str]) -> None:
    emulator, url = kfp
    session = connect(url, Auth(), patience=FAST)

    first = ensure_experiment(session, "hello-kubeflow")
    second = ensure_experiment(session, "hello-kubeflow")

    assert first == second
    assert len(emulator.experiments) == 1


def test_the_sdk_prints_nothing_on_stdout(
    kfp: tuple[KfpEmulator, str], package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout is for our results (and --json); the SDK's links go to the log."""
    _, url = kfp
    session = connect(url, Auth(), patience=FAST)
    follow_run(session, _started(session, package), timeout=30, steps=STEPS)

    assert capsys.readouterr().out == ""


def test_a_multi_user_install_needs_a_profile_namespace(kfp: tuple[KfpEmulator, str]) -> None:
    emulator, url = kfp
    emulator.multi_user = True

    with pytest.raises(KfpError, match=r"multi-user.*HK_NAMESPACE"):
        connect(url, Auth(), namespace="kubeflow", patience=FAST)


def test_on_a_multi_user_install_the_experiment_goes_to_the_profile_namespace(
    kfp: tuple[KfpEmulator, str],
) -> None:
    emulator, url = kfp
    emulator.multi_user = True
    session = connect(url, Auth(), namespace="kubeflow-user-example-com", patience=FAST)

    ensure_experiment(session, "hello-kubeflow")

    [experiment] = emulator.experiments.values()
    assert experiment["namespace"] == "kubeflow-user-example-com"


@pytest.mark.parametrize(
    "answer",
    [
        {"run_id": "r", "invented": 1},  # a field the API does not have
        {"state": "DONE"},  # a state the API does not have
        {"run_details": {"task_details": [{"error": "a string, not a google.rpc.Status"}]}},
    ],
)
def test_the_emulator_refuses_answers_the_swagger_does_not_define(answer: dict[str, Any]) -> None:
    """Its answers are checked against KFP 2.17.0's swagger, so an invented shape fails."""
    with pytest.raises(AssertionError, match=r"does not fit the 2\.17\.0 swagger"):
        check_answer("GET", "/apis/v2beta1/runs/{run_id}", answer)


def test_every_kfp_api_call_gets_the_request_timeout(
    kfp: tuple[KfpEmulator, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """kfp.Client takes no timeout: kfp/remote.py sets one on its private REST client.

    This fails by name when a kfp upgrade moves that client (pyproject.toml bounds kfp).
    """
    _, url = kfp
    session = connect(url, Auth(), patience=FAST)
    where = f"kfp {version('kfp')}: {REST_CLIENT}"
    rest = session.client._run_api.api_client.rest_client
    apis = [api for name, api in vars(session.client).items() if name.endswith("_api")]
    assert len(apis) > 3 and all(api.api_client.rest_client is rest for api in apis), (
        f"{where} is no longer shared by every API of the client"
    )
    timeouts: list[Any] = []
    pool = rest.pool_manager
    real = pool.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        timeouts.append(kwargs.get("timeout"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pool, "request", spy)
    session.client.list_experiments()

    assert timeouts, f"{where}: its pool_manager.request was not called"
    assert {(t.connect_timeout, t.read_timeout) for t in timeouts} == {
        (CONNECT_TIMEOUT, FAST.request_timeout)
    }, f"{where} no longer takes the request timeout"


def test_a_kfp_without_the_rest_client_the_timeout_is_set_on_is_named() -> None:
    """The adapter says which kfp moved what, rather than an AttributeError."""

    class Moved:
        pass

    with pytest.raises(KfpError, match=rf"kfp {re.escape(version('kfp'))} has no kfp\.Client\."):
        add_default_timeout(Moved(), 5.0)
