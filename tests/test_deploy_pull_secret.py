"""The image pull secret for a private registry: made from the settings, never shown."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from emulators import RunningCluster, settings_api

from hello_kubeflow.deploy.pull_secret import (
    PULL_SECRET,
    RegistryLogin,
    ensure_pull_secret,
    registry_login,
)
from hello_kubeflow.errors import SettingsError
from hello_kubeflow.settings import Settings

PASSWORD = "hunter2-private-registry"


def docker_config(secret: dict[str, object]) -> dict[str, object]:
    data = secret["data"]
    assert isinstance(data, dict)
    return dict(json.loads(base64.b64decode(data[".dockerconfigjson"])))


def test_no_registry_login_means_no_pull_secret() -> None:
    assert registry_login("localhost:5000", None, None) is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"registry_username": "me"}, "HK_REGISTRY_PASSWORD is not set"),
        ({"registry_password": PASSWORD}, "HK_REGISTRY_USERNAME is not set"),
        ({"registry_username": "me", "registry_password": PASSWORD}, "CONTAINER_REGISTRY"),
    ],
)
def test_a_half_set_login_is_refused_naming_what_is_missing(
    changes: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings = Settings(**changes)
        registry_login(
            settings.container_registry, settings.registry_username, settings.registry_password
        )

    assert named in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_the_secret_is_what_kubectl_create_secret_docker_registry_makes() -> None:
    login = registry_login("ghcr.io/me", "me", PASSWORD)
    assert login is not None

    secret = login.secret("kubeflow-user-example-com")

    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["name"] == PULL_SECRET
    entry = docker_config(secret)["auths"]["ghcr.io"]  # type: ignore[index]
    assert entry["username"] == "me" and entry["password"] == PASSWORD
    assert base64.b64decode(entry["auth"]).decode() == f"me:{PASSWORD}"


@pytest.mark.parametrize(
    ("registry", "key"),
    [
        ("docker.io/me", "https://index.docker.io/v1/"),
        ("me", "https://index.docker.io/v1/"),  # a Docker Hub account, as `docker push` reads it
        ("localhost:5000", "localhost:5000"),
        ("quay.io/me", "quay.io"),
    ],
)
def test_the_login_is_keyed_by_the_registry_the_images_come_from(registry: str, key: str) -> None:
    secret = RegistryLogin(registry, "me", PASSWORD).secret("kubeflow")

    assert list(docker_config(secret)["auths"]) == [key]  # type: ignore[call-overload]


def test_the_password_never_shows_in_repr_plan_or_scrubbed_text() -> None:
    login = RegistryLogin("quay.io/me", "me", PASSWORD)
    encoded = base64.b64encode(f"me:{PASSWORD}".encode()).decode()

    shown = " ".join([repr(login), login.describe(), login.scrub(f"x {PASSWORD} y {encoded}")])

    assert PASSWORD not in shown and encoded not in shown
    assert "me@quay.io" in login.describe()


def test_the_secret_is_created_then_refreshed_in_each_namespace(tmp_path: Path) -> None:
    with RunningCluster() as cluster:
        api = settings_api(cluster.settings(tmp_path))

        made = ensure_pull_secret(api, RegistryLogin("quay.io/me", "me", "old"), ["kubeflow"])
        again = ensure_pull_secret(
            api, RegistryLogin("quay.io/me", "me", PASSWORD), ["kubeflow", "models", "kubeflow"]
        )
        stored = {
            ns: cluster.emulator.stored("v1/secrets", ns, PULL_SECRET)
            for ns in ("kubeflow", "models")
        }

    assert made == ["kubeflow/hello-kubeflow-registry"]
    assert again == ["kubeflow/hello-kubeflow-registry", "models/hello-kubeflow-registry"]
    for secret in stored.values():
        assert secret is not None
        assert docker_config(secret)["auths"]["quay.io"]["password"] == PASSWORD  # type: ignore[index]
