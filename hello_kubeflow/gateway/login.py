"""Logging in to a full Kubeflow install as a browser does: Dex's form, oauth2-proxy's cookie.

The flow (kubeflow/manifests 26.03 example/; docs/cluster.md) follows oauth2-proxy v7.14.3
oauthproxy.go `OAuthStart`/`OAuthCallback` and dexidp/dex v2.45 server/handlers.go
`handleAuthorization`/`handleConnectorLogin`, web/templates/password.html. The cookie and
the password are never printed or logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from hello_kubeflow.errors import LoginError
from hello_kubeflow.gateway.endpoints import Auth
from hello_kubeflow.http_client import send
from hello_kubeflow.settings import env_name

log = logging.getLogger(__name__)

LOGIN_TIMEOUT = 30.0  # seconds per request
MAX_REDIRECTS = 10
START_PATH = "/oauth2/start"
CONNECTOR = "local"  # Dex's password database (`enablePasswordDB: true`)


@dataclass(frozen=True)
class DexSession:
    """A logged-in session: the cookie header to send, and what logging in took."""

    cookie: str = field(repr=False)
    round_trips: int
    seconds: float


def dex_login(
    base_url: str, username: str, password: str, *, timeout: float = LOGIN_TIMEOUT
) -> DexSession:
    """Log in at the gateway `base_url` through Dex and oauth2-proxy; the session cookie.

    Raises:
        LoginError: the gateway cannot be reached, is not Kubeflow's, or Dex
            refused the login.
    """
    base = base_url.rstrip("/")
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    started = time.monotonic()
    trips = 0

    def visit(method: str, url: str, **kwargs: Any) -> requests.Response:
        nonlocal trips
        try:
            answer = send(method, url, timeout=timeout, session=session, **kwargs)
        except requests.TooManyRedirects:
            raise LoginError(
                f"logging in at {base}: more than {MAX_REDIRECTS} redirects; is HK_GATEWAY_URL "
                "the address you open the Kubeflow dashboard at?"
            ) from None
        except requests.RequestException as exc:
            raise LoginError(
                f"logging in at {base}: cannot reach it ({type(exc).__name__}); check "
                "HK_GATEWAY_URL, or leave it empty to port-forward to the Istio gateway"
            ) from None
        trips += 1 + len(answer.history)
        return answer

    page = visit("GET", base + START_PATH, params={"rd": "/"})
    parts = urlsplit(page.url)
    if parts.path.endswith("/dex/auth"):  # several connectors: Dex lets the user pick
        page = visit("GET", urlunsplit(parts._replace(path=f"{parts.path}/{CONNECTOR}")))
        parts = urlsplit(page.url)
    if page.status_code != 200 or not parts.path.endswith("/login") or "/dex/" not in parts.path:
        raise LoginError(
            f"logging in at {base}: {START_PATH} did not lead to Dex's login form (it ended "
            f"at {parts.path} with HTTP {page.status_code}). Is {base} the gateway of a full "
            "Kubeflow install (Dex and oauth2-proxy)?"
        )
    answer = visit("POST", page.url, data={"login": username, "password": password})
    if not answer.history:  # Dex shows its form again
        raise LoginError(
            f"Dex at {base} refused the login of {username!r}: check HK_KUBEFLOW_USERNAME "
            "(the Dex login is the email, e.g. user@example.com) and HK_KUBEFLOW_PASSWORD"
        )
    if urlsplit(answer.url).path.endswith("/approval"):
        answer = visit("POST", answer.url, data={"approval": "approve"})
    cookies = sorted(
        (c.name, c.value)
        for c in session.cookies
        if c.value and not c.name.endswith("_csrf")  # oauth2-proxy's CSRF cookie
    )
    if not cookies:
        raise LoginError(
            f"Dex at {base} accepted {username!r}, but oauth2-proxy set no session cookie "
            f"(the flow ended at {urlsplit(answer.url).path} with HTTP {answer.status_code})"
        )
    seconds = round(time.monotonic() - started, 3)
    return DexSession("; ".join(f"{n}={v}" for n, v in cookies), trips, seconds)


def gateway_auth(base_url: str, auth: Auth, username: str | None, password: str | None) -> Auth:
    """`auth`, or a fresh session cookie when it carries nothing and a login is set.

    Raises:
        LoginError: only one of HK_KUBEFLOW_USERNAME / HK_KUBEFLOW_PASSWORD is
            set, or the login failed.
    """
    if auth.token or auth.cookie or not (username or password):
        return auth
    if not (username and password):
        missing = env_name("kubeflow_password" if username else "kubeflow_username")
        raise LoginError(f"{missing} is not set: set both to log in to Kubeflow, or neither")
    logged = dex_login(base_url, username, password)
    log.info(
        "logged in to Kubeflow at %s as %s (%d round trips, %.2f s)",
        base_url,
        username,
        logged.round_trips,
        logged.seconds,
    )
    return Auth(cookie=logged.cookie)
