"""Kubeflow 26.03's front door over real HTTP: Istio's gateway, oauth2-proxy and Dex.

Everything it answers follows kubeflow/manifests 26.03 (example/, rendered in
../shared/upstream/kubeflow-manifests-26.03/example.yaml) and the upstream
source of the pieces it configures:

- Istio on the ingress gateway: the AuthorizationPolicy
  `istio-ingressgateway-oauth2-proxy` (CUSTOM, oauth2-proxy) applies only to
  requests without an `Authorization` header; the RequestAuthentication
  `dex-jwt` accepts JWTs of issuer `http://dex.auth.svc.cluster.local:5556/dex`
  and puts the `email` claim in `kubeflow-userid`; `istio-ingressgateway-
  require-jwt` denies requests with no principal. Paths /dex/ and /oauth2/ are
  exempt. Envoy's refusals read "Jwt issuer is not configured" (401) and
  "RBAC: access denied" (403).
- oauth2-proxy v7.14.3 with 26.03's `oauth2_proxy.cfg`: `cookie_name =
  "oauth2_proxy_kubeflow"`, its CSRF cookie `<cookie_name>_csrf`
  (pkg/cookies/csrf.go), `login_url = "/dex/auth"`, `redirect_url =
  "/oauth2/callback"` (relative), `api_routes` (/api/, /apis/, ^/ml_metadata)
  answered 401 when not logged in, the sign-in page (403) elsewhere
  (`skip_provider_button = false`); state `<nonce>:<redirect>`; the session
  sets `Authorization: Bearer <id token>` (`set_authorization_header`).
- Dex v2.45.1 with 26.03's config (`enablePasswordDB`, static user
  user@example.com, client `kubeflow-oidc-authservice` with redirect URI
  `/oauth2/callback`, `skipApprovalScreen: true`): server/handlers.go redirects
  `/dex/auth` to the only connector `/dex/auth/local` (302), that to
  `/dex/auth/local/login?back=&state=<request>` (302); the form
  (web/templates/password.html) posts `login` and `password`; a wrong pair
  shows the form again (200), a right one sends the code to the redirect URI
  (303, `sendCodeResponse`).

With kubeflow/manifests' `common/oauth2-proxy/overlays/m2m-dex-and-kind`
(the overlay example/kustomization.yaml names "for KIND clusters (allows K8S
JWTs for gateway auth)"), Istio also trusts, by the RequestAuthentication
`m2m-token-issuer`, Kubernetes service account tokens of the issuers
`https://kubernetes.default.svc.cluster.local` and `https://kubernetes.default.svc`
(keys from `cluster-jwks-proxy`), with `kubeflow-userid` from the `sub` claim:
`KubeflowGateway(trusted_issuers=KIND_OVERLAY_ISSUERS)`.

Behind it, the routes Kubeflow's VirtualServices make: `/pipeline/...` to the
Kubeflow Pipelines API (the UI's proxy to ml-pipeline), `/seldon/<ns>/<name>/`
rewritten to `/` (Seldon's, with ISTIO_ENABLED), and KServe's by Host.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

DEX_ISSUER = "http://dex.auth.svc.cluster.local:5556/dex"
CLIENT_ID = "kubeflow-oidc-authservice"
REDIRECT_URI = "/oauth2/callback"
COOKIE = "oauth2_proxy_kubeflow"
CSRF_COOKIE = f"{COOKIE}_csrf"
API_ROUTES = (re.compile("/api/"), re.compile("/apis/"), re.compile("^/ml_metadata"))
USERS = {"user@example.com": "12341234"}  # 26.03's static user and Kubeflow's documented password
UPSTREAM_TIMEOUT = 30.0
# kubeflow/manifests 26.03, common/oauth2-proxy/overlays/m2m-dex-and-kind/kustomization.yaml:
# the issuers its patches give the RequestAuthentication `m2m-token-issuer`.
KIND_OVERLAY_ISSUERS = (
    DEX_ISSUER,
    "https://kubernetes.default.svc.cluster.local",
    "https://kubernetes.default.svc",
)


def jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token (unsigned: the emulator trusts the tokens it keeps)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def _issuer(token: str) -> str | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("iss"))
    except (IndexError, ValueError):
        return None


@dataclass
class KubeflowGateway:
    """The emulated front door's state; `serve()` runs it on 127.0.0.1."""

    kfp: str = ""  # base URL of the Kubeflow Pipelines API behind /pipeline
    model: str = ""  # base URL of the model server behind Seldon's or KServe's route
    seldon: tuple[str, str] = ("kubeflow-user-example-com", "mnist-classifier")
    kserve_host: str = "mnist-classifier.kubeflow-user-example-com.example.com"
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    trusted_issuers: tuple[str, ...] = (DEX_ISSUER,)  # 26.03's example: `dex-jwt` alone
    tokens: dict[str, str] = field(default_factory=dict)  # token -> kubeflow-userid
    sessions: dict[str, str] = field(default_factory=dict)  # session cookie -> ID token
    auth_requests: dict[str, dict[str, str]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # code -> email
    seen: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue_dex_token(self, email: str) -> str:
        """An ID token Dex would issue for `email` (what a session carries)."""
        token = jwt(
            {"iss": DEX_ISSUER, "aud": CLIENT_ID, "email": email, "nonce": secrets.token_hex(4)}
        )
        self.tokens[token] = email
        return token

    def issue_service_account_token(self, issuer: str, namespace: str, name: str) -> str:
        """A token of `kubectl create token NAME -n NAMESPACE` from an API server of `issuer`.

        Claims as kubernetes v1.34 pkg/serviceaccount/claims.go makes them
        (`iss`, `sub` system:serviceaccount:<ns>:<name>, `aud`, `exp`, `iat`,
        `nbf`, `jti`, and the private `kubernetes.io` claim); the m2m rule
        puts `sub` in `kubeflow-userid`.
        """
        subject = f"system:serviceaccount:{namespace}:{name}"
        token = jwt(
            {
                "iss": issuer,
                "sub": subject,
                "aud": [issuer],
                "exp": 4102444800,
                "iat": 1764547200,
                "nbf": 1764547200,
                "jti": secrets.token_hex(8),
                "kubernetes.io": {
                    "namespace": namespace,
                    "serviceaccount": {"name": name, "uid": secrets.token_hex(8)},
                },
            }
        )
        self.tokens[token] = subject
        return token

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a free port of 127.0.0.1 for the duration; yield the base URL."""
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                gateway._handle(self)

            def do_POST(self) -> None:
                gateway._handle(self)

            def do_DELETE(self) -> None:
                gateway._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)

    # ---- one request

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        url = urlsplit(request.path)
        cookies = _cookies(request.headers.get("Cookie", ""))
        with self.lock:
            self.seen.append(
                {
                    "method": request.command,
                    "path": url.path,
                    "headers": dict(request.headers),
                    "cookies": cookies,
                }
            )
        if url.path.startswith("/dex/"):
            answer = self._dex(request.command, url.path, parse_qs(url.query), body)
        elif url.path.startswith("/oauth2/"):
            answer = self._oauth2(url.path, parse_qs(url.query), cookies)
        else:
            answer = self._protected(request, url.path, url.query, body, cookies)
        status, headers, payload = answer
        request.send_response(status)
        for name, value in headers:
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    # ---- Dex

    def _dex(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        one = {k: v[0] for k, v in query.items()}
        if path == "/dex/auth" and method == "GET":
            if one.get("client_id") != CLIENT_ID or one.get("redirect_uri") != REDIRECT_URI:
                return 400, [], b"Invalid client_id or redirect_uri."
            return 302, [("Location", f"/dex/auth/local?{urlencode(one)}")], b""
        if path == "/dex/auth/local" and method == "GET":
            request_id = secrets.token_hex(8)
            self.auth_requests[request_id] = one
            login = f"/dex/auth/local/login?{urlencode({'back': '', 'state': request_id})}"
            return 302, [("Location", login)], b""
        if path == "/dex/auth/local/login":
            request_id = one.get("state", "")
            if request_id not in self.auth_requests:
                return 400, [], b"Invalid 'state' parameter provided: not found"
            if method == "POST":
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                email = form.get("login", "")
                if self.users.get(email) is not None and self.users[email] == form.get("password"):
                    original = self.auth_requests.pop(request_id)
                    code = secrets.token_hex(8)
                    self.codes[code] = email
                    target = f"{original['redirect_uri']}?" + urlencode(
                        {"code": code, "state": original.get("state", "")}
                    )
                    return 303, [("Location", target)], b""
                return 200, [], _login_form(request_id, invalid=True)
            return 200, [], _login_form(request_id, invalid=False)
        return 404, [], b"404 page not found"

    # ---- oauth2-proxy

    def _oauth2(
        self, path: str, query: dict[str, list[str]], cookies: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        one = {k: v[0] for k, v in query.items()}
        if path == "/oauth2/start":
            nonce = secrets.token_hex(16)
            verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            login = "/dex/auth?" + urlencode(
                {
                    "approval_prompt": "force",
                    "client_id": CLIENT_ID,
                    "code_challenge": verifier,
                    "code_challenge_method": "S256",
                    "prompt": "none",
                    "redirect_uri": REDIRECT_URI,
                    "response_type": "code",
                    "scope": "profile email groups openid",
                    "state": f"{nonce}:{one.get('rd', '/')}",
                }
            )
            csrf = f"{CSRF_COOKIE}={nonce}; Path=/; Max-Age=900; HttpOnly; SameSite=Lax"
            return 302, [("Set-Cookie", csrf), ("Location", login)], b""
        if path == "/oauth2/callback":
            nonce, _, redirect = one.get("state", "").partition(":")
            if not nonce or cookies.get(CSRF_COOKIE) != nonce:
                return (
                    403,
                    [],
                    b"Login Failed: Unable to find a valid CSRF token. Please try again.",
                )
            email = self.codes.pop(one.get("code", ""), None)
            if email is None:
                return 500, [], b"Internal Server Error"
            session = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
            self.sessions[session] = self.issue_dex_token(email)
            return (
                302,
                [
                    ("Set-Cookie", f"{CSRF_COOKIE}=; Path=/; Max-Age=0; HttpOnly"),
                    ("Set-Cookie", f"{COOKIE}={session}; Path=/; Max-Age=86400; HttpOnly"),
                    ("Location", redirect or "/"),
                ],
                b"",
            )
        return 404, [], b"404 page not found"

    # ---- Istio, then the routes behind it

    def _protected(
        self,
        request: BaseHTTPRequestHandler,
        path: str,
        query: str,
        body: bytes,
        cookies: dict[str, str],
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        authorization = request.headers.get("Authorization", "")
        if not authorization:  # the CUSTOM policy: ask oauth2-proxy
            token = self.sessions.get(cookies.get(COOKIE, ""))
            if token is None:
                if any(route.search(path) for route in API_ROUTES):
                    return 401, [], b"Unauthorized"
                return 403, [("Content-Type", "text/html")], b"<html>Sign in with Dex</html>"
            authorization = f"Bearer {token}"
        bearer = authorization.removeprefix("Bearer ")
        if _issuer(bearer) is None:
            return (
                401,
                [],
                b"Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
            )
        if _issuer(bearer) not in self.trusted_issuers:
            return 401, [], b"Jwt issuer is not configured"
        user = self.tokens.get(bearer)
        if user is None:
            return 401, [], b"Jwt verification fails"
        return self._route(request, path, query, body, user)

    def _route(
        self, request: BaseHTTPRequestHandler, path: str, query: str, body: bytes, email: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        namespace, name = self.seldon
        seldon_prefix = f"/seldon/{namespace}/{name}/"
        if path.startswith("/pipeline/") and self.kfp:
            target = self.kfp + path.removeprefix("/pipeline")
        elif path.startswith(seldon_prefix) and self.model:
            target = self.model + "/" + path.removeprefix(seldon_prefix)
        elif request.headers.get("Host") == self.kserve_host and self.model:
            target = self.model + path
        else:
            return 404, [], b""
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "cookie", "authorization", "content-length")
        }
        headers["kubeflow-userid"] = email  # dex-jwt's outputClaimToHeaders
        answer = requests.request(
            request.command,
            target + (f"?{query}" if query else ""),
            headers=headers,
            data=body,
            timeout=UPSTREAM_TIMEOUT,
            allow_redirects=False,
        )
        kept = [
            (k, v)
            for k, v in answer.headers.items()
            if k.lower()
            not in ("content-length", "transfer-encoding", "connection", "content-encoding")
        ]
        return answer.status_code, kept, answer.content


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in header.split(";") if "=" in part)
    return {name: value for name, _, value in pairs}


def _login_form(request_id: str, *, invalid: bool) -> bytes:
    action = f"/dex/auth/local/login?{urlencode({'back': '', 'state': request_id})}"
    error = '<div id="login-error">Invalid Email Address and password.</div>' if invalid else ""
    return (
        f'<html><form method="post" action="{action}">'
        '<input required id="login" name="login" type="text"/>'
        '<input required id="password" name="password" type="password"/>'
        f'{error}<button type="submit">Login</button></form></html>'
    ).encode()
