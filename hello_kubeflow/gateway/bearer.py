"""Why Kubeflow's gateway refused a bearer token: read its claims (never verified, never shown).

A service account token's `iss` is its API server's `--service-account-issuer` (kubernetes
v1.34, pkg/serviceaccount/claims.go); kubeflow/manifests 26.03 trusts the kind cluster's
(tests/install_KinD_create_KinD_cluster_install_kustomize.sh) with
common/oauth2-proxy/overlays/m2m-dex-and-kind/kustomization.yaml.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

KIND_ISSUER = "https://kubernetes.default.svc"
TRUSTED_BY_KIND_OVERLAY = ("https://kubernetes.default.svc.cluster.local", KIND_ISSUER)
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class TokenClaims:
    """What a JWT says of itself (unverified): who issued it, for whom, until when."""

    issuer: str
    subject: str
    expires: float | None
    kubernetes: bool

    @property
    def expired(self) -> bool:
        """Its `exp` is in the past."""
        return self.expires is not None and self.expires < time.time()


def read_claims(token: str) -> TokenClaims | None:
    """The claims of a JWT, without checking its signature; None when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims: Any = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    subject = str(claims.get("sub") or "")
    exp = claims.get("exp")
    return TokenClaims(
        issuer=str(claims.get("iss") or ""),
        subject=subject,
        expires=float(exp) if isinstance(exp, int | float) else None,
        kubernetes="kubernetes.io" in claims or subject.startswith(SERVICE_ACCOUNT_PREFIX),
    )


def why_refused(token: str) -> str:
    """Why a gateway that answered 401 to `token` (never part of the answer) refused it, and
    how to fix that."""
    claims = read_claims(token)
    if claims is None:
        return (
            "HK_KFP_TOKEN is not a JWT (three dot-separated parts): give the token itself, "
            "without quotes or a 'Bearer ' prefix of its own"
        )
    if claims.expired:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(claims.expires or 0))
        return (
            f"the token (issuer {claims.issuer}) expired at {when}: make a new one "
            "(`kubectl create token` lasts 1 h unless given --duration)"
        )
    if not claims.kubernetes:
        return (
            f"the token's issuer is {claims.issuer or '(none)'}, which the gateway did not "
            "accept: expired, or not issued by this Kubeflow's Dex"
        )
    return (
        f"it is a Kubernetes service account token ({claims.subject}) of issuer "
        f"{claims.issuer or '(none)'}, and the gateway trusts a cluster's tokens only when "
        "that issuer, the API server's --service-account-issuer, is one of its Istio "
        "RequestAuthentication issuers (`kubectl get requestauthentication -n istio-system "
        "-o jsonpath='{..issuer}'`; the cluster's: `kubectl get --raw "
        "/.well-known/openid-configuration`). Kubeflow's example trusts only Dex; its "
        f"m2m-dex-and-kind overlay adds {' and '.join(TRUSTED_BY_KIND_OVERLAY)}. To fix it, "
        f"create the kind cluster with service-account-issuer {KIND_ISSUER} as "
        "docs/cluster.md does and install that overlay, or add your cluster's issuer to "
        "the RequestAuthentication m2m-token-issuer (and oauth2-proxy's EXTRA_JWT_ISSUERS)"
    )
