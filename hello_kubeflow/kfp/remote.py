"""Connecting to Kubeflow Pipelines with `kfp.Client`, and calling it safely.

The SDK's calls have no request timeout: the client built here gives every
request one, transient failures (connection errors, 429, 502, 503, 504) are
retried for a bounded time (`call_api`), and failures become `KfpError`
messages that name the endpoint and never show credentials. The SDK's links
printed on stdout go to the log instead (stdout is for our results).
"""

from __future__ import annotations

import contextlib
import functools
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
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_delay,
)

from hello_kubeflow.errors import KfpError
from hello_kubeflow.gateway.endpoints import Auth, auth_failure_message
from hello_kubeflow.retry import describe_failure, jittered_backoff, log_retry

log = logging.getLogger(__name__)
MAX_RETRY_WAIT = 15.0  # seconds: the longest pause between two tries of one call

T = TypeVar("T")

REQUEST_TIMEOUT = 60.0
RETRY_DEADLINE = 60.0
RETRY_INITIAL_WAIT = 1.0
POLL_INTERVAL = 5.0
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
NOT_ACTED_ON_STATUS = frozenset({429, 503})  # safe to retry even a call that creates
HEALTH_PATH = "/apis/v2beta1/healthz"


@dataclass(frozen=True)
class Patience:
    """How long to wait for the API: per request, for retries, between polls."""

    request_timeout: float = REQUEST_TIMEOUT
    retry_deadline: float = RETRY_DEADLINE
    retry_initial_wait: float = RETRY_INITIAL_WAIT
    poll_interval: float = POLL_INTERVAL


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


class _Transient(Exception):
    """A failure worth retrying (connection error, 429, 502, 503, 504)."""


# ---- connecting


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
        KfpError: unreachable, not a KFP API, authentication refused, or a
            multi-user install without a profile namespace.
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
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import kfp  # kfp warns at import: under the filter

        client = _call(
            patience,
            f"connecting to Kubeflow Pipelines at {endpoint}",
            auth,
            endpoint,
            lambda: kfp.Client(
                host=endpoint,
                existing_token=auth.token,
                cookies=auth.cookie,
                ui_host=endpoint,
                namespace=namespace if multi_user and namespace else "kubeflow",
            ),
        )
    _add_default_timeout(client, patience.request_timeout)
    log.info(
        "connected to Kubeflow Pipelines at %s (%s)",
        endpoint,
        "multi-user" if multi_user else "single-user",
    )
    return KfpSession(client, endpoint, auth, patience, namespace if multi_user else None)


def _check_health(endpoint: str, auth: Auth, patience: Patience) -> dict[str, Any]:
    url = endpoint + HEALTH_PATH

    @retry(
        retry=retry_if_exception(lambda exc: isinstance(exc, _Transient)),
        wait=jittered_backoff(patience.retry_initial_wait, MAX_RETRY_WAIT),
        stop=stop_after_delay(patience.retry_deadline),
        before_sleep=log_retry(log, f"GET {url}", level=logging.INFO),
        reraise=True,
    )
    def probe() -> requests.Response:
        try:
            answer = requests.get(
                url, headers=auth.headers(), timeout=patience.request_timeout, allow_redirects=False
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"cannot connect ({type(exc).__name__})") from None
        if answer.status_code in TRANSIENT_STATUS:
            raise _Transient(f"answered {answer.status_code} {answer.reason}")
        return answer

    try:
        answer = probe()
    except _Transient as exc:
        raise KfpError(
            f"Kubeflow Pipelines at {endpoint} is not reachable: it {exc} for "
            f"{patience.retry_deadline:.0f} s. Check that the cluster is up (`inv status`), "
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


def _add_default_timeout(client: Any, seconds: float) -> None:
    """Give every request of the generated API client a timeout (the SDK sets none)."""
    rest = client._run_api.api_client.rest_client  # shared by all the client's APIs
    plain = rest.request

    @functools.wraps(plain)
    def request(*args: Any, **kwargs: Any) -> Any:
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or (10.0, seconds)
        return plain(*args, **kwargs)

    rest.request = request


# ---- calling the API


def call_api(
    session: KfpSession, what: str, call: Callable[[], T], *, idempotent: bool = True
) -> T:
    """Run one SDK call on the session: retried when transient, `KfpError` when it fails.

    Args:
        session: the connection.
        what: names the call in messages ("creating run X").
        call: the SDK call.
        idempotent: False for calls that create something: they are retried only
            when the request cannot have been acted on (no connection, 429, 503),
            so a retry never makes a second run or pipeline.
    """
    with _quiet():
        return _call(session.patience, what, session.auth, session.endpoint, call, idempotent)


def _call(
    patience: Patience,
    what: str,
    auth: Auth,
    endpoint: str,
    call: Callable[[], T],
    idempotent: bool = True,
) -> T:
    """Run one SDK call, retrying transient failures; turn failures into `KfpError`."""
    retry_status = TRANSIENT_STATUS if idempotent else NOT_ACTED_ON_STATUS

    def transient(exc: BaseException) -> bool:
        if isinstance(exc, ApiException):
            return exc.status in retry_status or (idempotent and not exc.status)
        if isinstance(exc, urllib3.exceptions.MaxRetryError):
            exc = exc.reason or exc
        if not idempotent:
            return isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)
        return isinstance(exc, urllib3.exceptions.HTTPError)

    retrying = retry(
        retry=retry_if_exception(transient),
        wait=jittered_backoff(patience.retry_initial_wait, MAX_RETRY_WAIT),
        stop=stop_after_delay(patience.retry_deadline),
        before_sleep=log_retry(log, what, level=logging.INFO, describe=describe_failure),
        reraise=True,
    )
    try:
        return retrying(call)()
    except ApiException as exc:
        status = int(exc.status or 0)
        if status in (401, 403):
            raise KfpError(f"{what}: {auth_failure_message(endpoint, status, auth)}") from None
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
