"""The image pull secret that lets the cluster pull the project image from a private registry.

A `kubernetes.io/dockerconfigjson` Secret, as `kubectl create secret docker-registry` writes it
(kubernetes/kubectl v1.35, pkg/cmd/create/create_secret_docker.go). The password never leaves
this module but in the Secret: not in a log, a plan, a `repr` or an error (refusals are scrubbed).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hello_kubeflow.deploy.model_manifests import LABELS
from hello_kubeflow.deploy.serving_api import apply
from hello_kubeflow.errors import ClusterError, SettingsError
from hello_kubeflow.images.plan import registry_host
from hello_kubeflow.settings import MASK, env_name

if TYPE_CHECKING:
    from kubernetes import client

log = logging.getLogger(__name__)

PULL_SECRET = "hello-kubeflow-registry"
SECRET_TYPE = "kubernetes.io/dockerconfigjson"
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # where the Docker CLI keeps Docker Hub's login


@dataclass(frozen=True)
class RegistryLogin:
    """A registry and the login the cluster pulls with (the password is never shown)."""

    registry: str
    username: str
    password: str = field(repr=False)

    @property
    def server(self) -> str:
        """Its key in `auths`, read as image names are (`me`: Docker Hub, `quay.io/me`: quay.io)."""
        host = registry_host(f"{self.registry}/image")  # any image under the registry
        return DOCKER_HUB_KEY if host in DOCKER_HUB else host

    def describe(self) -> str:
        """What a plan shows: the secret, the registry and the user, never the password."""
        return f"{PULL_SECRET} ({self.username}@{self.server}, from HK_REGISTRY_USERNAME/PASSWORD)"

    def scrub(self, text: str) -> str:
        """`text` with the password and the encoded login masked."""
        for secret in (self.password, self._auth(), self._config()):
            text = text.replace(secret, MASK)
        return text

    def _auth(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def _config(self) -> str:
        auth = {"username": self.username, "password": self.password, "auth": self._auth()}
        return json.dumps({"auths": {self.server: auth}}, sort_keys=True)

    def secret(self, namespace: str) -> dict[str, Any]:
        """The Secret, ready for server-side apply."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": PULL_SECRET, "namespace": namespace, "labels": dict(LABELS)},
            "type": SECRET_TYPE,
            "data": {".dockerconfigjson": base64.b64encode(self._config().encode()).decode()},
        }


def registry_login(
    registry: str | None, user: str | None, password: str | None
) -> RegistryLogin | None:
    """The login the cluster pulls the image with, or None (a public registry).

    Args:
        registry: the registry the login is for (`CONTAINER_REGISTRY`).
        user: `HK_REGISTRY_USERNAME`.
        password: `HK_REGISTRY_PASSWORD`.

    Raises:
        SettingsError: only one of user and password is set, or no registry is.
    """
    if not user and not password:
        return None
    if bool(user) != bool(password):
        missing = env_name("registry_password" if user else "registry_username")
        raise SettingsError(
            [
                f"{missing} is not set while its partner is: set both HK_REGISTRY_USERNAME "
                "and HK_REGISTRY_PASSWORD (the cluster pulls the image with them), or neither"
            ]
        )
    if not registry:
        raise SettingsError(
            [
                "HK_REGISTRY_USERNAME/PASSWORD are set but CONTAINER_REGISTRY is not: set it "
                "to the registry they log in to (e.g. ghcr.io/me), so the cluster's pull "
                "secret names it"
            ]
        )
    return RegistryLogin(registry, str(user), str(password))


def ensure_pull_secret(
    api: client.ApiClient, login: RegistryLogin, namespaces: list[str]
) -> list[str]:
    """Create or refresh the pull secret in each of `namespaces`; return them as `namespace/name`.

    Raises:
        PrerequisiteError: we may not write Secrets there (RBAC).
        ClusterError: the API server refused it (its message, password masked).
    """
    done = []
    for namespace in dict.fromkeys(namespaces):
        try:
            apply(api, login.secret(namespace))
        except ClusterError as exc:  # PrerequisiteError or DeploymentError: one message
            raise type(exc)(login.scrub(str(exc))) from None
        done.append(f"{namespace}/{PULL_SECRET}")
        log.info("image pull secret %s is up to date for %s", done[-1], login.server)
    return done
