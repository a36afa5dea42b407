"""The image against a real Docker engine and real registries (`docker-registry`).

Builds are few and shared (session fixtures): the project image is built once
from a copy of the build context, FROM a small local Debian/Python base
(`scripts/base_image.sh`), and pushed to a registry started for the session.
Registry failures use a tiny imported image so that each push takes a moment.
Skipped, with the reason, when no Docker engine is reachable; CI always has one
(`scripts/ci_docker.sh`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from registry_support import Registry, RegistryFront, free_port

from hello_kubeflow.errors import (
    BuildError,
    DockerUnavailableError,
    RegistryAuthError,
    RegistryUnavailableError,
)
from hello_kubeflow.images.build import build_context, build_image
from hello_kubeflow.images.container import server_container
from hello_kubeflow.images.engine import connect
from hello_kubeflow.images.lock import read_lock
from hello_kubeflow.images.plan import plan_build
from hello_kubeflow.images.publish import BuildPushResult, build_push
from hello_kubeflow.images.push import push_image
from hello_kubeflow.settings import Settings

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = os.environ.get("HK_TEST_BASE_IMAGE", "hello-kubeflow-base:bookworm")
# Another name keeps parallel test sessions on one engine from retagging each other's images.
IMAGE_NAME = os.environ.get("HK_TEST_IMAGE_NAME", "hello-kubeflow")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ENGINE_TIMEOUT = 600
SHORT_RETRY_SECONDS = 4.0
USER, PASSWORD = "hk-tester", "s3cret-for-tests-only"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the local engine (the package's own probe), or a skip saying how to start one."""
    try:
        client = connect(ENGINE_TIMEOUT)
    except DockerUnavailableError as exc:
        pytest.skip(f"{exc} (tests: sudo scripts/ci_docker.sh)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The small Debian/Python base; made once per machine by scripts/base_image.sh."""
    import docker

    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        if shutil.which("debootstrap") is None:
            pytest.skip(f"base image {BASE_IMAGE} missing and no debootstrap to make it")
        subprocess.run(
            ["bash", str(REPO / "scripts/base_image.sh"), BASE_IMAGE], check=True, timeout=900
        )
    return BASE_IMAGE


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real registry (Debian's docker-registry) on a free 127.0.0.1 port."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed: sudo scripts/ci_docker.sh")
    with Registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry requiring a login (htpasswd, bcrypt), on a free 127.0.0.1 port."""
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry or htpasswd missing: sudo scripts/ci_docker.sh")
    root = tmp_path_factory.mktemp("auth-registry")
    line = subprocess.run(
        ["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    ).stdout
    (root / "htpasswd").write_text(line)
    with Registry(root, htpasswd=root / "htpasswd") as running:
        yield running


@pytest.fixture(scope="session")
def context_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's build context, unpacked into a scratch folder (safe to edit)."""
    target = tmp_path_factory.mktemp("context")
    with build_context(REPO, "Dockerfile", None) as context, tarfile.open(fileobj=context) as tar:
        tar.extractall(target, filter="data")
    shutil.copy(REPO / ".dockerignore", target / ".dockerignore")
    return target


def _settings(tmp: Path, registry: str = "", **env: str) -> Settings:
    values = {
        "HK_OUTPUT_DIR": str(tmp / "outputs"),
        "HK_BASE_IMAGE": BASE_IMAGE,
        "HK_IMAGE_NAME": IMAGE_NAME,
        "HK_DOCKER_TIMEOUT": str(ENGINE_TIMEOUT),
        **({"CONTAINER_REGISTRY": registry} if registry else {}),
        **({"HK_EXTRA_CA_CERTS": str(CA_BUNDLE)} if CA_BUNDLE.is_file() else {}),
        **env,
    }
    return Settings.from_env(values, dotenv=None)


@pytest.fixture(scope="session")
def built(
    base_image: str,
    registry: Registry,
    context_copy: Path,
    docker_client: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BuildPushResult]:
    """The project image, built once and pushed to the session's registry."""
    settings = _settings(tmp_path_factory.mktemp("built"), registry.address)
    result = build_push(settings, tag="session", context=context_copy)
    yield result
    _remove_image(docker_client, result.plan.image)


@pytest.fixture(scope="session")
def tiny_image(docker_client: Any) -> Iterator[str]:
    """A one-file image (docker import), quick to push anywhere."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = f"hello {uuid.uuid4()}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    name = f"hk-tiny-{uuid.uuid4().hex[:8]}:one"
    response = docker_client.api.import_image_from_data(data.getvalue(), repository=name)
    assert "sha256:" in str(response)
    yield name
    _remove_image(docker_client, name)


def _remove_image(client: Any, *references: str) -> None:
    """Remove each reference, and with its last tag the step images only it used.

    The classic builder keeps one image per Dockerfile step as the parent of the
    next: removed with `noprune`, they would stay behind untagged (~1 GB each for
    the project image) after every test session.
    """
    import docker

    for reference in references:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(reference)


def _tagged(client: Any, image: str, registry: str, tag: str) -> str:
    repository = f"{registry}/hk-tiny"
    client.images.get(image).tag(repository, tag)
    return repository


def _run(client: Any, image: str, command: list[str], **options: Any) -> str:
    output = client.containers.run(image, command, remove=True, **options)
    return bytes(output).decode()


def test_build_push_records_the_digest_the_registry_serves(
    built: BuildPushResult, registry: Registry
) -> None:
    record = built.record
    assert record is not None and record.digest is not None
    assert "session" in registry.tags(IMAGE_NAME)
    assert registry.manifest_digest(IMAGE_NAME, "session") == record.digest
    saved = json.loads(Path(str(built.record_file)).read_text())
    assert saved["reference"] == f"{registry.address}/{IMAGE_NAME}@{record.digest}"
    assert record.reference in built.describe()


def test_image_pulled_by_digest_runs_the_package_as_non_root(
    built: BuildPushResult, docker_client: Any
) -> None:
    assert built.record is not None
    reference = built.record.reference
    docker_client.images.pull(reference)
    script = (
        "import os, sys, hello_kubeflow, kfp, sklearn, onnxruntime; "
        "print(sys.executable, os.getuid(), hello_kubeflow.__version__)"
    )
    output = _run(docker_client, reference, ["python3", "-c", script])
    assert output.split() == ["/opt/hello-kubeflow/bin/python3", "1000", "0.1.0"]


def test_image_carries_oci_labels_and_the_base_command(
    built: BuildPushResult, docker_client: Any
) -> None:
    """The base's entrypoint and command stand (a notebook image's start Jupyter)."""
    assert built.record is not None
    config = docker_client.images.get(built.record.reference).attrs["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.created"] == built.record.created
    assert labels["org.opencontainers.image.base.name"] == BASE_IMAGE
    assert "org.opencontainers.image.revision" in labels
    base = docker_client.images.get(BASE_IMAGE).attrs["Config"]
    assert (config["Entrypoint"], config["Cmd"]) == (base["Entrypoint"], base["Cmd"])


def test_image_holds_exactly_the_locked_versions_and_labels_them(
    built: BuildPushResult, docker_client: Any
) -> None:
    assert built.record is not None
    pins = read_lock(REPO / "requirements.lock")
    labels = docker_client.images.get(built.record.reference).attrs["Config"]["Labels"]
    assert labels["io.hello-kubeflow.version.scikit-learn"] == pins["scikit-learn"]
    script = (
        "import importlib.metadata as m; "
        "print(','.join(m.version(d) for d in ('scikit-learn', 'numpy', 'onnxruntime')))"
    )
    installed = _run(docker_client, built.record.reference, ["python3", "-c", script]).strip()
    assert installed == ",".join(pins[d] for d in ("scikit-learn", "numpy", "onnxruntime"))


def test_code_only_change_rebuilds_on_cached_dependencies(
    built: BuildPushResult,
    context_copy: Path,
    docker_client: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    changed = tmp_path / "context"
    shutil.copytree(context_copy, changed)
    marker = f"rebuilt-{uuid.uuid4().hex[:8]}"
    with (changed / "hello_kubeflow/__init__.py").open("a") as source:
        source.write(f'\nBUILD_MARKER = "{marker}"\n')

    with caplog.at_level(logging.INFO, logger="hello_kubeflow.images.build"):
        result = build_push(_settings(tmp_path), push=False, tag="rebuilt", context=changed)
    try:
        steps = _step_outputs(caplog.messages)
        instructions = [instruction for instruction, _ in steps]
        # The dependencies are installed by the RUN right after the lock file is copied.
        install = instructions.index("COPY requirements.lock /tmp/hk-build/requirements.lock") + 1
        copy_source = instructions.index("COPY hello_kubeflow/ /tmp/hk-build/hello_kubeflow/")
        assert instructions[install].startswith("RUN ")
        assert "Using cache" in steps[install - 1][1]
        assert "Using cache" in steps[install][1]
        assert "Using cache" not in steps[copy_source][1]
        script = "import hello_kubeflow; print(hello_kubeflow.BUILD_MARKER)"
        assert _run(docker_client, result.plan.image, ["python3", "-c", script]).strip() == marker
    finally:
        _remove_image(docker_client, result.plan.image)


def _step_outputs(messages: list[str]) -> list[tuple[str, str]]:
    """Each build step's instruction ("RUN ...") and the output logged under it, in order."""
    steps: list[tuple[str, str]] = []
    for message in messages:
        if message.startswith("Step "):
            steps.append((message.split(" : ", 1)[1], ""))
        elif steps:
            steps[-1] = (steps[-1][0], steps[-1][1] + message + "\n")
    return steps


def test_failing_dockerfile_step_is_named_with_its_output(
    base_image: str, docker_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        "RUN echo 'fetching the model weights' && echo 'weights.bin: not found' >&2 && exit 3\n"
    )
    plan = plan_build(_settings(tmp_path), push=False, tag="broken", context=tmp_path)
    with pytest.raises(BuildError) as caught:
        build_image(docker_client, plan)
    message = str(caught.value)
    assert "Step 2/2 : RUN echo 'fetching the model weights'" in message
    assert "weights.bin: not found" in message
    assert "returned a non-zero code: 3" in message


def test_a_base_image_that_cannot_be_pulled_stops_the_build_naming_it(
    docker_client: Any, tmp_path: Path
) -> None:
    """The project's Dockerfile FROM a registry that does not answer: no build, the way out."""
    base = f"127.0.0.1:{free_port()}/hk-missing/jupyter-scipy:v1"
    settings = _settings(tmp_path, HK_BASE_IMAGE=base)

    with pytest.raises(BuildError) as caught:
        build_push(settings, push=False, tag="no-base", context=REPO)

    message = str(caught.value)
    assert f"could not get the base image {base} from {base.split('/')[0]}" in message
    assert "connection refused" in message
    assert "--build-arg BASE_IMAGE=IMAGE" in message and "HK_BASE_IMAGE=IMAGE" in message
    assert not (tmp_path / "outputs" / "image.json").exists()


def test_a_test_image_removed_leaves_no_untagged_image_behind(
    base_image: str, docker_client: Any, tmp_path: Path
) -> None:
    probe = f"io.hello-kubeflow.test-probe={uuid.uuid4().hex}"  # on every step image
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\nLABEL {probe}\nRUN echo one > /one\nRUN echo two > /two\n"
    )
    plan = plan_build(_settings(tmp_path), push=False, tag="leftover", context=tmp_path)
    build_image(docker_client, plan)
    assert len(docker_client.images.list(all=True, filters={"label": probe})) == 3

    _remove_image(docker_client, plan.image)

    assert docker_client.images.list(all=True, filters={"label": probe}) == []


def test_missing_or_malformed_registry_builds_nothing(docker_client: Any, tmp_path: Path) -> None:
    name = f"hk-never-built-{uuid.uuid4().hex[:8]}"
    inv = Path(sys.executable).parent / "inv"
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "HK_IMAGE_NAME": name}
    for extra, expected in (
        ({}, "CONTAINER_REGISTRY is not set"),
        ({"CONTAINER_REGISTRY": "http://localhost:5000"}, "CONTAINER_REGISTRY="),
    ):
        done = subprocess.run(
            [str(inv), "--search-root", str(REPO), "build-push", "--base-image", BASE_IMAGE],
            cwd=tmp_path,  # no developer's .env here
            env={**base_env, "HK_OUTPUT_DIR": str(tmp_path / "out"), **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1
        assert expected in done.stderr
        assert "Traceback" not in done.stderr
    assert docker_client.images.list(name=name) == []
    assert not (tmp_path / "out").exists()


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The one-line warnings logged before sleeping between push attempts."""
    return [m for m in caplog.messages if "; next try in " in m]


def test_push_retries_until_the_registry_comes_up(
    tiny_image: str, registry: Registry, docker_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    repository = _tagged(docker_client, tiny_image, f"127.0.0.1:{port}", "late")
    fronts: list[RegistryFront] = []
    # Nothing listens on the port until the timer starts the registry's front there.
    starter = threading.Timer(
        2.5, lambda: fronts.append(RegistryFront(registry.port, port=port).__enter__())
    )
    starter.start()
    try:
        with caplog.at_level(logging.WARNING, logger="hello_kubeflow.images.push"):
            digest = push_image(docker_client, repository, "late", retry_seconds=60)
    finally:
        starter.join()
        for front in fronts:
            front.__exit__(None, None, None)
        _remove_image(docker_client, f"{repository}:late")
    assert digest.startswith("sha256:")
    assert any("connection refused" in m for m in _retries(caplog))
    assert "late" in registry.tags("hk-tiny")


def test_push_retries_a_registry_answering_503(
    tiny_image: str, registry: Registry, docker_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with RegistryFront(registry.port, failures=2, pattern=r"^PUT /v2/.*/manifests/") as front:
        repository = _tagged(docker_client, tiny_image, front.address, "flaky")
        try:
            with caplog.at_level(logging.WARNING, logger="hello_kubeflow.images.push"):
                digest = push_image(docker_client, repository, "flaky", retry_seconds=60)
        finally:
            _remove_image(docker_client, f"{repository}:flaky")
    assert front.failed == 2
    assert sum("503" in m for m in _retries(caplog)) == 2
    assert registry.manifest_digest("hk-tiny", "flaky") == digest


def test_registry_that_stays_down_is_a_clear_error_after_retries(
    tiny_image: str, docker_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    address = f"127.0.0.1:{free_port()}"
    repository = _tagged(docker_client, tiny_image, address, "down")
    try:
        with (
            caplog.at_level(logging.WARNING, logger="hello_kubeflow.images.push"),
            pytest.raises(RegistryUnavailableError) as caught,
        ):
            push_image(docker_client, repository, "down", retry_seconds=SHORT_RETRY_SECONDS)
    finally:
        _remove_image(docker_client, f"{repository}:down")
    message = str(caught.value)
    assert address in message
    assert "connection refused" in message
    assert "scripts/ci_docker.sh" in message
    assert len(_retries(caplog)) >= 1


@pytest.mark.parametrize("password", ["", "wrong-password-for-tests"])
def test_registry_refusing_credentials_is_a_clear_error_without_retry(
    password: str,
    tiny_image: str,
    auth_registry: Registry,
    docker_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = {"username": USER, "password": password} if password else None
    with RegistryFront(auth_registry.port) as front:
        repository = _tagged(docker_client, tiny_image, front.address, "auth")
        try:
            with (
                caplog.at_level(logging.WARNING, logger="hello_kubeflow.images.push"),
                pytest.raises(RegistryAuthError) as caught,
            ):
                push_image(docker_client, repository, "auth", auth=auth, retry_seconds=60)
        finally:
            _remove_image(docker_client, f"{repository}:auth")
        pings = front.seen.count("GET /v2/")
    message = str(caught.value)
    assert f"docker login {front.address}" in message
    assert "HK_REGISTRY_USERNAME" in message
    if password:
        assert password not in message
    assert _retries(caplog) == []
    assert pings == 1  # one attempt only


def test_registry_accepts_the_right_credentials(
    tiny_image: str, auth_registry: Registry, docker_client: Any
) -> None:
    repository = _tagged(docker_client, tiny_image, auth_registry.address, "auth-ok")
    try:
        push_image(
            docker_client, repository, "auth-ok", auth={"username": USER, "password": PASSWORD}
        )
    finally:
        _remove_image(docker_client, f"{repository}:auth-ok")
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert "auth-ok" in auth_registry.tags("hk-tiny", auth_header=basic)


@pytest.mark.slow
def test_containerised_server_answers_a_prediction(
    built: BuildPushResult, mnist_dir: Path, tmp_path: Path
) -> None:
    from serving_support import make_tiny_model, mnist_test_pixels

    from hello_kubeflow.model.train import load_model

    assert built.record is not None
    model_dir = make_tiny_model(mnist_dir, tmp_path / "model")
    pixels, _labels = mnist_test_pixels(mnist_dir, 3)
    expected = load_model(model_dir).predict_proba(pixels)
    body = json.dumps({"data": {"ndarray": pixels.tolist()}}).encode()

    settings = _settings(tmp_path)
    with server_container(settings, model_dir, image=built.record.reference, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            server.url + "/api/v1.0/predictions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        container = server.container
        mounts = container.attrs["Mounts"]
    assert answer["data"]["names"] == [f"class:{d}" for d in range(10)]
    np.testing.assert_allclose(answer["data"]["ndarray"], expected, atol=1e-5)
    assert [(m["Destination"], m["RW"]) for m in mounts] == [("/mnt/model", False)]


@pytest.mark.slow
def test_docker_runner_pipeline_run_on_a_slice(
    built: BuildPushResult, mnist_dir: Path, tmp_path: Path
) -> None:
    from hello_kubeflow.model.artifact import latest_model_path
    from hello_kubeflow.pipeline.local import RunOptions, run_local

    assert built.record is not None
    settings = _settings(
        tmp_path,
        MNIST_DIR=str(mnist_dir),
        HK_PIPELINE_IMAGE=built.record.reference,
        HK_N_JOBS="1",
    )
    options = RunOptions(n_estimators=5, train_limit=2000, test_limit=500)
    summary = run_local(settings, options, runner="docker")
    assert summary.runner == "docker"
    assert summary.test_size == 500
    assert 0.6 < summary.accuracy <= 1.0
    model_dir = latest_model_path(settings.output_dir)
    assert (model_dir / "metadata.json").is_file()
    assert model_dir.stat().st_uid == os.getuid()  # outputs belong to the caller


@pytest.mark.slow
def test_docker_runner_trains_the_network_too(
    built: BuildPushResult, mnist_dir: Path, tmp_path: Path
) -> None:
    """`inv train --model mlp --runner docker` trains the network in the project image."""
    from hello_kubeflow.pipeline.local import RunOptions, run_local

    assert built.record is not None
    settings = _settings(
        tmp_path, MNIST_DIR=str(mnist_dir), HK_PIPELINE_IMAGE=built.record.reference
    )
    options = RunOptions(model="mlp", train_limit=2000, test_limit=500)
    summary = run_local(settings, options, runner="docker")
    assert (summary.runner, summary.model) == ("docker", "mlp")
    assert 0.8 < summary.accuracy <= 1.0
    metadata = json.loads((Path(summary.model_path) / "metadata.json").read_text())
    assert metadata["model"] == "mlp"
