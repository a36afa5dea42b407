"""Deciding a build before any engine is contacted, the build context, the image record."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from crd_schemas import upstream_file
from registry_support import free_port

from hello_kubeflow.errors import CheckoutError, DockerUnavailableError, ImageError, SettingsError
from hello_kubeflow.images.build import EXTRA_CA_NAME, build_context
from hello_kubeflow.images.engine import connect
from hello_kubeflow.images.plan import default_tag, plan_build
from hello_kubeflow.images.publish import build_push
from hello_kubeflow.images.push import registry_auth
from hello_kubeflow.images.record import ImageRecord, pipeline_image, write_record
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DIGEST = "sha256:" + "ab" * 32


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"HK_OUTPUT_DIR": str(tmp_path / "outputs"), **env}, dotenv=None)


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> str:
    """DOCKER_HOST points at a port where nothing listens."""
    host = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCKER_HOST", host)
    return host


def test_missing_registry_is_an_error_before_anything_is_built(
    tmp_path: Path, no_engine: str
) -> None:
    with pytest.raises(SettingsError, match="CONTAINER_REGISTRY is not set") as caught:
        build_push(_settings(tmp_path), context=REPO)
    assert "--no-push" in str(caught.value)
    assert not (tmp_path / "outputs").exists()


def test_malformed_registry_is_refused_with_an_example() -> None:
    with pytest.raises(
        SettingsError, match=re.escape("CONTAINER_REGISTRY='https://quay.io/me'")
    ) as caught:
        Settings.from_env({"CONTAINER_REGISTRY": "https://quay.io/me"}, dotenv=None)
    assert "localhost:5000" in str(caught.value)


def test_malformed_registry_set_in_code_is_refused_too(tmp_path: Path) -> None:
    """`Settings` checks itself, so code cannot hand the build a malformed registry."""
    with pytest.raises(SettingsError, match=re.escape("CONTAINER_REGISTRY='Quay.IO/Me'")):
        _settings(tmp_path).replace(container_registry="Quay.IO/Me")


def test_image_name_is_registry_name_and_tag(tmp_path: Path) -> None:
    settings = _settings(tmp_path, CONTAINER_REGISTRY="quay.io/me", HK_IMAGE_NAME="hk")
    plan = plan_build(settings, tag="v1", context=REPO)
    assert plan.image == "quay.io/me/hk:v1"
    assert plan.registry == "quay.io/me"


def test_no_push_needs_no_registry(tmp_path: Path) -> None:
    plan = plan_build(_settings(tmp_path), push=False, tag="v1", context=REPO)
    assert plan.image == "hello-kubeflow:v1"
    assert not plan.push


def test_bad_tag_names_the_setting(tmp_path: Path) -> None:
    settings = _settings(tmp_path, CONTAINER_REGISTRY="localhost:5000")
    with pytest.raises(SettingsError, match="HK_IMAGE_TAG"):
        plan_build(settings, tag="-not a tag", context=REPO)


def test_missing_ca_bundle_is_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path, HK_EXTRA_CA_CERTS=str(tmp_path / "nope.pem"))
    with pytest.raises(SettingsError, match="HK_EXTRA_CA_CERTS"):
        plan_build(settings, push=False, context=REPO)


def test_binary_der_certificate_is_refused_with_how_to_convert_it(tmp_path: Path) -> None:
    der = tmp_path / "proxy.der"
    der.write_bytes(b"\x30\x82\x03\x0a\xff\xfe")
    settings = _settings(tmp_path, HK_EXTRA_CA_CERTS=str(der))
    with pytest.raises(SettingsError, match=r"binary \(DER\?\).*openssl x509 -inform der"):
        plan_build(settings, push=False, context=REPO)


def test_file_without_a_certificate_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.pem"
    text.write_text("not a certificate\n")
    settings = _settings(tmp_path, HK_EXTRA_CA_CERTS=str(text))
    with pytest.raises(SettingsError, match="BEGIN CERTIFICATE"):
        plan_build(settings, push=False, context=REPO)


def test_default_tag_is_the_short_commit(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "file.txt").write_text("one\n")
    _git(tmp_path, "add", "file.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    commit = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    assert default_tag(tmp_path) == commit
    (tmp_path / "file.txt").write_text("two\n")
    assert default_tag(tmp_path) == f"{commit}-dirty"


def test_default_tag_outside_git_is_latest(tmp_path: Path) -> None:
    assert default_tag(tmp_path) == "latest"


def test_dry_run_prints_the_plan_without_an_engine(tmp_path: Path, no_engine: str) -> None:
    settings = _settings(tmp_path, CONTAINER_REGISTRY="localhost:5000", HK_BASE_IMAGE="py:3")
    result = build_push(settings, dry_run=True, tag="v1", context=REPO)
    text = result.describe()
    assert "dry run" in text
    assert "localhost:5000/hello-kubeflow:v1" in text
    assert "py:3" in text
    assert result.as_dict()["plan"]["build_args"]["BASE_IMAGE"] == "py:3"
    assert not (tmp_path / "outputs").exists()


def _spawner_images() -> list[str]:
    """The Jupyter images Kubeflow 26.03's notebook spawner offers (rendered example/).

    kubeflow/manifests 26.03, `applications/jupyter/jupyter-web-app/upstream/base/configs/
    spawner_ui_config.yaml`: `spawnerFormDefaults.image.value` and `.options`, in the
    ConfigMap `jupyter-web-app-config-*` of the rendered example.
    """
    example = upstream_file("kubeflow-manifests-26.03/example.yaml").read_text()
    for document in example.split("\n---\n"):
        if "spawner_ui_config.yaml" not in document or "kind: ConfigMap" not in document:
            continue
        config_map = yaml.load(document, Loader=yaml.CSafeLoader)
        image = yaml.safe_load(config_map["data"]["spawner_ui_config.yaml"])["spawnerFormDefaults"][
            "image"
        ]
        return [image["value"], *image["options"]]
    raise AssertionError("no spawner_ui_config.yaml in Kubeflow 26.03's example")


def test_the_default_base_is_a_notebook_image_kubeflows_spawner_offers(
    tmp_path: Path, no_engine: str
) -> None:
    """The dry run shows the Dockerfile's default base; the next upgrade cannot drift from it."""
    found = re.search(r"^ARG BASE_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert found, "the Dockerfile has no `ARG BASE_IMAGE=` default"
    base = found.group(1)

    result = build_push(_settings(tmp_path), push=False, dry_run=True, tag="v1", context=REPO)

    assert base in _spawner_images()
    assert f"base:    {base} (the Dockerfile default)" in result.describe()
    assert f"# Dockerfile BASE_IMAGE (default: {base})." in (REPO / ".env.example").read_text()


def test_dry_run_without_a_registry_shows_the_plan_and_what_is_missing(
    tmp_path: Path, no_engine: str
) -> None:
    result = build_push(_settings(tmp_path), dry_run=True, tag="v1", context=REPO)

    text = result.describe()
    assert "image:   hello-kubeflow:v1" in text
    assert "CONTAINER_REGISTRY is not set" in text
    assert result.as_dict()["plan"]["registry"] is None
    assert not (tmp_path / "outputs").exists()


def test_no_engine_is_a_clear_error_saying_how_to_start_one(tmp_path: Path, no_engine: str) -> None:
    with pytest.raises(DockerUnavailableError) as caught:
        connect(_settings(tmp_path).docker_timeout)
    message = str(caught.value)
    assert no_engine in message
    assert "dockerd" in message
    assert "DOCKER_HOST" in message


def test_half_given_credentials_are_refused_without_showing_the_password(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, HK_REGISTRY_PASSWORD="hunter2-secret")
    with pytest.raises(SettingsError, match="HK_REGISTRY_USERNAME") as caught:
        registry_auth(settings.registry_username, settings.registry_password, "quay.io")
    assert "hunter2-secret" not in str(caught.value)
    assert "docker login quay.io" in str(caught.value)


def test_build_context_is_the_source_only_plus_the_extra_ca(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    with build_context(REPO, "Dockerfile", bundle) as context, tarfile.open(fileobj=context) as tar:
        names = set(tar.getnames())
        extra = tar.extractfile(EXTRA_CA_NAME)
        assert extra is not None and b"BEGIN CERTIFICATE" in extra.read()
    assert {"Dockerfile", "pyproject.toml", "hello_kubeflow/__init__.py"} <= names
    leaked = [n for n in names if n.split("/")[0] in {".git", "tests", "outputs", "venv", "docs"}]
    assert leaked == []
    assert not any("__pycache__" in n for n in names)


def test_pipeline_image_prefers_the_explicit_setting(tmp_path: Path) -> None:
    settings = _settings(tmp_path, HK_PIPELINE_IMAGE="quay.io/me/hk@" + DIGEST)
    write_record(settings.output_dir, _record("localhost:5000/hello-kubeflow", DIGEST))
    assert pipeline_image(settings) == "quay.io/me/hk@" + DIGEST


def test_pipeline_image_is_the_recorded_digest(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    write_record(settings.output_dir, _record("localhost:5000/hello-kubeflow", DIGEST))
    assert pipeline_image(settings) == f"localhost:5000/hello-kubeflow@{DIGEST}"


def test_pipeline_image_after_no_push_is_the_local_tag(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    write_record(settings.output_dir, _record("hello-kubeflow", None))
    assert pipeline_image(settings) == "hello-kubeflow:abc1234"


def test_pipeline_image_without_a_build_falls_back_to_latest(tmp_path: Path) -> None:
    settings = _settings(tmp_path, CONTAINER_REGISTRY="localhost:5000")
    assert pipeline_image(settings) == "localhost:5000/hello-kubeflow:latest"


def test_damaged_record_says_to_build_again(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "image.json").write_text(json.dumps({"image": "x"}))
    with pytest.raises(ImageError, match="inv build-push"):
        pipeline_image(settings)


@pytest.mark.parametrize("content", ["null", "[]", '"x"'])
def test_record_that_is_not_an_object_says_to_build_again(tmp_path: Path, content: str) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "image.json").write_text(content)
    with pytest.raises(ImageError, match="is damaged"):
        pipeline_image(settings)


def _record(repository: str, digest: str | None) -> ImageRecord:
    return ImageRecord(
        image=f"{repository}:abc1234",
        repository=repository,
        tag="abc1234",
        image_id="sha256:" + "cd" * 32,
        digest=digest,
        pushed=digest is not None,
        base_image="python:3.11",
        revision="abc1234" * 5,
        created="2025-01-01T00:00:00Z",
        build_seconds=1.0,
        push_seconds=1.0,
    )


def test_building_outside_a_checkout_says_it_needs_one(tmp_path: Path) -> None:
    """A wheel install: the Dockerfile and build context are the checkout's, so say so."""
    with pytest.raises(CheckoutError, match="inv build-push needs the hello-kubeflow checkout"):
        plan_build(_settings(tmp_path), push=False, tag="v1")
