"""The one HTTP client (requests): a timeout on every call, failures told apart by type."""

from __future__ import annotations

from typing import Any

import requests
import urllib3

from hello_kubeflow.retry import is_name_not_resolved

CONNECT_TIMEOUT = 10.0  # seconds to open a connection; each caller sets the read timeout
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def send(
    method: str,
    url: str,
    *,
    timeout: float,
    session: requests.Session | None = None,
    **options: Any,
) -> requests.Response:
    """One request, connected within `CONNECT_TIMEOUT` (or `timeout`, if shorter), each piece
    of the answer within `timeout` seconds.

    `session` lends its connections and cookies (by default one of its own, closed before
    returning: `stream=True` needs a session); `options` are `Session.request`'s own.

    Raises:
        requests.RequestException: no answer; `is_transient` and `is_unreachable` tell which.
    """
    options = {"timeout": (min(CONNECT_TIMEOUT, timeout), timeout), **options}
    if "Authorization" in (options.get("headers") or {}):
        # Credentials of its own (a gateway's token): a `~/.netrc` entry must not replace them.
        options.setdefault("auth", _no_netrc)
    try:
        if session is not None:
            return session.request(method, url, **options)
        with requests.Session() as own:
            return own.request(method, url, **options)
    except requests.ConnectionError as exc:
        # requests reports a body that stops arriving as a ConnectionError: it is a timeout.
        if exc.args and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError):
            raise requests.ReadTimeout(*exc.args, request=exc.request) from exc
        raise


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth that adds nothing: given, it keeps requests from reading `~/.netrc`."""
    return request


def status_error(response: requests.Response) -> requests.HTTPError:
    """The error for an answer with an unwanted status, e.g. `HTTP 503 Service Unavailable`."""
    said = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
    return requests.HTTPError(said, response=response)


def is_unreachable(exc: BaseException) -> bool:
    """The server was not reached: refused, no DNS, no connection in time (not a TLS error)."""
    return isinstance(exc, requests.ConnectionError | requests.Timeout) and not isinstance(
        exc, requests.exceptions.SSLError
    )


def is_transient(exc: BaseException, statuses: frozenset[int] = RETRY_STATUSES) -> bool:
    """Worth another try: an answer with one of `statuses`, no connection, a timeout or a
    dropped body; not a host name that does not resolve nor a certificate (they do not heal)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code in statuses
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return True
    return is_unreachable(exc) and not is_name_not_resolved(exc)
