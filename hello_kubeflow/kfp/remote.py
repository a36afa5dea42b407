"""Connecting to Kubeflow Pipelines with `kfp.Client`, and calling it with timeouts, bounded
retries and `KfpError` messages that name the endpoint, never the credentials.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import urllib3
from kfp_server_api import ApiException
from tenacity import retry, retry_if_exception, stop_after_delay

from hello_kubeflow.errors import KfpError
from hello_kubeflow.gateway.endpoints import Auth, auth_failure_message
from hello_kubeflow.http_client import is_transient, send, status_error
from hello_kubeflow.kfp._kfp_private import add_default_timeout
from hello_kubeflow.retry import describe_failure, jittered_backoff, log_retry

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_RETRY_WAIT = 15.0  # seconds: the longest pause between two tries of one call
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
NOT_ACTED_ON_STATUS = frozenset({429, 503})  # safe to retry even a call that creates
HEALTH_PATH = "/apis/v2beta1/healthz"


@dataclass(frozen=True)
class Patience:
    """How long to wait for the API, in seconds: per request, for retries, between polls."""

    request_timeout: float = 60.0
    retry_deadline: float = 60.0
    retry_initial_wait: float = 1.0
    poll_interval: float = 5.0


@dataclass
class KfpSession:
    """A connected `kfp.Client` and what we learned connecting."""

    client: Any
    endpoint: str
    auth: Auth
    patience: Patience
    namespace: str | None

    def run_url(self, run_id: str) -> str:
        """The run's page in the Pipelines UI."""
        return f"{self.endpoint}/#/runs/details/{run_id}"


def connect(
    endpoint: str, auth: Auth, *, namespace: str = "", patience: Patience | None = None
) -> KfpSession:
    """Check that the KFP API answers, then build a `kfp.Client` for it.

    Args:
        endpoint: the API's base URL (port-forward, gateway + `/pipeline`, or direct).
        auth: the token or cookie to send.
        namespace: the profile namespace to use on a multi-user install.
        patience: timeouts and retry budget.

    Raises:
        KfpError: unreachable, not a KFP API, authentication refused, or multi-user
            without a profile namespace.
    """
    patience = patience or Patience()
    health = _check_health(endpoint, auth, patience)
    multi_user = bool(health.get("multi_user"))
    if multi_user and namespace in ("", "kubeflow"):
        raise KfpError(
            f"Kubeflow Pipelines at {endpoint} is multi-user: runs belong to a profile "
            "namespace. Set HK_NAMESPACE to yours, e.g. kubeflow-user-example-com "
            "(`kubectl get profiles` lists them; with none, create a Profile or register in "
            "the dashboard)"
        )
    session = KfpSession(None, endpoint, auth, patience, namespace if multi_user else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import kfp  # kfp warns at import: under the filter

        session.client = call_api(
            session,
            f"connecting to Kubeflow Pipelines at {endpoint}",
            lambda: kfp.Client(
                host=endpoint,
                existing_token=auth.token,
                cookies=auth.cookie,
                ui_host=endpoint,
                namespace=session.namespace or "kubeflow",
            ),
        )
    add_default_timeout(session.client, patience.request_timeout)
    kind = "multi-user" if multi_user else "single-user"
    log.info("connected to Kubeflow Pipelines at %s (%s)", endpoint, kind)
    return session


def _check_health(endpoint: str, auth: Auth, patience: Patience) -> dict[str, Any]:
    url = endpoint + HEALTH_PATH

    @retry(
        retry=retry_if_exception(lambda exc: is_transient(exc, TRANSIENT_STATUS)),
        wait=jittered_backoff(patience.retry_initial_wait, MAX_RETRY_WAIT),
        stop=stop_after_delay(patience.retry_deadline),
        before_sleep=log_retry(log, f"GET {url}", level=logging.INFO),
        reraise=True,
    )
    def probe() -> requests.Response:
        timeout = patience.request_timeout
        answer = send("GET", url, timeout=timeout, headers=auth.headers(), allow_redirects=False)
        if answer.status_code in TRANSIENT_STATUS:
            raise status_error(answer)
        return answer

    try:
        answer = probe()
    except requests.RequestException as exc:
        got = exc.response
        said = (
            f"answered {got.status_code} {got.reason}"
            if got is not None
            else f"cannot connect ({describe_failure(exc)})"
        )
        # What does not heal (no such host, a certificate) was not retried: no "for N s".
        waited = (
            f" for {patience.retry_deadline:.0f} s" if is_transient(exc, TRANSIENT_STATUS) else ""
        )
        raise KfpError(
            f"Kubeflow Pipelines at {endpoint} is not reachable: it {said}{waited}. Check "
            "that the cluster is up (`inv status`), "
            "that HK_KFP_ENDPOINT / HK_GATEWAY_URL is right, or leave both empty to "
            "port-forward to svc/ml-pipeline-ui"
        ) from None
    if answer.status_code in (401, 403) or 300 <= answer.status_code < 400:
        raise KfpError(auth_failure_message(url, answer.status_code, auth))
    if answer.status_code == 404:
        raise KfpError(
            f"{url} answered 404: this is not a Kubeflow Pipelines v2 API. On a full "
            "Kubeflow install the API is under the gateway's /pipeline path (set "
            "HK_GATEWAY_URL, not HK_KFP_ENDPOINT); KFP 2.x is needed"
        )
    try:
        answer.raise_for_status()
        health: dict[str, Any] = answer.json()
    except (requests.HTTPError, ValueError):
        raise KfpError(
            f"{url} answered {answer.status_code} with no health report: is it the "
            "Kubeflow Pipelines API (or a login page)? Check HK_KFP_ENDPOINT / HK_GATEWAY_URL"
        ) from None
    return health


def call_api(
    session: KfpSession, what: str, call: Callable[[], T], *, idempotent: bool = True
) -> T:
    """Run one SDK call on the session: retried when transient, `KfpError` when it fails.

    Args:
        session: the connection; `call` the SDK call.
        what: names the call in messages ("creating run X").
        idempotent: False for calls that create something: retried only when the request
            cannot have been acted on (no connection, 429, 503), lest a run be made twice.
    """
    retry_status = TRANSIENT_STATUS if idempotent else NOT_ACTED_ON_STATUS

    def transient(exc: BaseException) -> bool:
        if isinstance(exc, ApiException):
            return exc.status in retry_status or (idempotent and not exc.status)
        if isinstance(exc, urllib3.exceptions.MaxRetryError):
            exc = exc.reason or exc
        if not idempotent:
            return isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)
        return isinstance(exc, urllib3.exceptions.HTTPError)

    patience, endpoint = session.patience, session.endpoint
    retrying = retry(
        retry=retry_if_exception(transient),
        wait=jittered_backoff(patience.retry_initial_wait, MAX_RETRY_WAIT),
        stop=stop_after_delay(patience.retry_deadline),
        before_sleep=log_retry(log, what, level=logging.INFO),
        reraise=True,
    )
    try:
        with _quiet():
            return retrying(call)()
    except ApiException as exc:
        status = int(exc.status or 0)
        if status in (401, 403):
            message = auth_failure_message(endpoint, status, session.auth)
            raise KfpError(f"{what}: {message}") from None
        raise KfpError(f"{what}: the API answered {status} {exc.reason}: {_said(exc)}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise KfpError(
            f"{what}: Kubeflow Pipelines at {endpoint} stopped answering "
            f"({type(exc).__name__}); check `inv status` and try again"
        ) from None


def _said(exc: Any) -> str:
    """The error message in an API error body, without headers or anything we sent."""
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    try:
        parsed = json.loads(body or "")
        text = parsed.get("message") or parsed.get("error") or body
    except (ValueError, AttributeError):
        text = body or "(no message)"
    return str(text).strip()[:500]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The SDK prints links on stdout, which is for our results: log them instead."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    for line in buffer.getvalue().splitlines():
        log.debug("kfp: %s", line)
