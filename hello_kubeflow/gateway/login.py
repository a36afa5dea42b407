"""Logging in to a full Kubeflow install as a browser does: Dex's form, oauth2-proxy's cookie.

Kubeflow 26.03 (kubeflow/manifests, example/) puts oauth2-proxy v7.14 in front
of everything behind its Istio gateway; a request without an `Authorization`
header needs oauth2-proxy's session cookie (`cookie_name =
"oauth2_proxy_kubeflow"` in its `oauth2_proxy.cfg`). A browser gets it so:

1. `GET /oauth2/start?rd=/`: oauth2-proxy sets its CSRF cookie and redirects
   to Dex (`login_url = "/dex/auth"`, relative `redirect_url = /oauth2/callback`);
2. Dex, with one connector (`enablePasswordDB`, the static users), redirects to
   `/dex/auth/local`, which redirects to its password form
   `/dex/auth/local/login?...` (dexidp/dex v2.45, server/handlers.go
   `handleAuthorization`, `handleConnectorLogin`);
3. `POST` the form's fields `login` (the email) and `password`
   (web/templates/password.html); Dex redirects to `/dex/approval`, which
   (`skipApprovalScreen: true`) redirects to `/oauth2/callback?code=...`, where
   oauth2-proxy redeems the code and sets the session cookie
   (oauth2-proxy v7.14.3, oauthproxy.go `OAuthStart`, `OAuthCallback`).

Kubeflow's own docs script the same flow for the KFP SDK. The cookie and the
password are never printed or logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import requests

from hello_kubeflow.errors import LoginError
from hello_kubeflow.gateway.endpoints import Auth
from hello_kubeflow.settings import Settings, env_name

log = logging.getLogger(__name__)

LOGIN_TIMEOUT = 30.0  # seconds per request
MAX_REDIRECTS = 10
START_PATH = "/oauth2/start"
CONNECTOR = "local"  # Dex's password database (`enablePasswordDB: true`)
_FIX = (
    "check HK_KUBEFLOW_USERNAME (the Dex login is the email, e.g. user@example.com) and "
    "HK_KUBEFLOW_PASSWORD"
)


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

    def send(method: str, url: str, **kwargs: object) -> requests.Response:
        nonlocal trips
        try:
            answer = session.request(method, url, timeout=timeout, allow_redirects=True, **kwargs)  # type: ignore[arg-type]
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

    page = send("GET", base + START_PATH, params={"rd": "/"})
    parts = urlsplit(page.url)
    if parts.path.endswith("/dex/auth"):  # several connectors: Dex lets the user pick
        page = send("GET", urlunsplit(parts._replace(path=f"{parts.path}/{CONNECTOR}")))
        parts = urlsplit(page.url)
    if page.status_code != 200 or not parts.path.endswith("/login") or "/dex/" not in parts.path:
        raise LoginError(
            f"logging in at {base}: {START_PATH} did not lead to Dex's login form (it ended "
            f"at {parts.path} with HTTP {page.status_code}). Is {base} the gateway of a full "
            "Kubeflow install (Dex and oauth2-proxy)?"
        )
    answer = send("POST", page.url, data={"login": username, "password": password})
    if not answer.history:  # Dex shows its form again
        raise LoginError(f"Dex at {base} refused the login of {username!r}: {_FIX}")
    if urlsplit(answer.url).path.endswith("/approval"):
        answer = send("POST", answer.url, data={"approval": "approve"})
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


def gateway_auth(settings: Settings, base_url: str, auth: Auth) -> Auth:
    """`auth`, or a fresh session cookie when it carries nothing and a login is set.

    Raises:
        LoginError: only one of HK_KUBEFLOW_USERNAME / HK_KUBEFLOW_PASSWORD is
            set, or the login failed.
    """
    username, password = settings.kubeflow_username, settings.kubeflow_password
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
