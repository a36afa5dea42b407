"""The project image is a Kubeflow notebook image that still runs the steps and the server.

Built once per session FROM a small stand-in for Kubeflow's notebook images
(`tests/notebook_base/`: jovyan, an init entrypoint, Jupyter on 8888 under
`NB_PREFIX`; its init refuses to run a command it is given, so anything that
relies on the image's entrypoint fails loudly). Skipped, with the reason, when
no Docker engine is reachable.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from notebook_support import build_notebook_base, get_json, run_in_kernel, wait_for_jupyter
from test_images import (  # noqa: F401  (session fixtures shared with the image tests)
    _remove_image,
    _settings,
    base_image,
    context_copy,
    docker_client,
)

from hello_kubeflow.images.container import server_container
from hello_kubeflow.images.publish import BuildPushResult, build_push

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = f"hk-nb-i16-{uuid.uuid4().hex[:8]}"
NB_PREFIX = "/notebook/kubeflow-user-example-com/hello-kubeflow"


@pytest.fixture(scope="session")
def notebook_base(docker_client: Any, base_image: str) -> Iterator[str]:  # noqa: F811
    """The notebook-contract stand-in, built FROM the local Debian/Python base."""
    tag = build_notebook_base(docker_client, base_image, f"{NAME}-base:session")
    yield tag
    _remove_image(docker_client, tag)


@pytest.fixture(scope="session")
def notebook_image(
    notebook_base: str,
    context_copy: Path,  # noqa: F811
    docker_client: Any,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BuildPushResult]:
    """The project image built on the notebook-contract base (not pushed)."""
    settings = _settings(tmp_path_factory.mktemp("notebook-image"), HK_IMAGE_NAME=NAME)
    result = build_push(
        settings, push=False, tag="session", base_image=notebook_base, context=context_copy
    )
    yield result
    _remove_image(docker_client, result.plan.image)


@pytest.fixture
def notebook_server(
    notebook_image: BuildPushResult,
    docker_client: Any,  # noqa: F811
) -> Iterator[str]:
    """The image started as a Kubeflow Notebook starts it: its own entrypoint and command,
    NB_PREFIX set, an empty volume on /home/jovyan; yields Jupyter's base URL."""
    container = docker_client.containers.run(
        notebook_image.plan.image,
        detach=True,
        name=f"{NAME}-server-{uuid.uuid4().hex[:6]}",
        environment={"NB_PREFIX": NB_PREFIX},
        tmpfs={"/home/jovyan": "uid=1000,gid=100,mode=2775"},
        ports={"8888/tcp": ("127.0.0.1", None)},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8888/tcp"][0]["HostPort"]
        base_url = f"http://127.0.0.1:{port}{NB_PREFIX}/"
        wait_for_jupyter(base_url, container)
        yield base_url
    finally:
        container.remove(force=True)


def test_the_image_keeps_the_notebook_base_entrypoint_command_and_user(
    notebook_image: BuildPushResult,
    notebook_base: str,
    docker_client: Any,  # noqa: F811
) -> None:
    image = docker_client.images.get(notebook_image.plan.image).attrs["Config"]
    base = docker_client.images.get(notebook_base).attrs["Config"]

    assert image["Entrypoint"] == base["Entrypoint"] == ["/init"]
    assert image["Cmd"] == base["Cmd"]
    assert image["User"] == "1000"
    assert image.get("Healthcheck") is None  # a model-server probe would fail a notebook
    assert image["Labels"]["org.opencontainers.image.base.name"] == notebook_base


def test_jupyter_answers_under_nb_prefix_with_an_empty_home_volume(notebook_server: str) -> None:
    status = get_json(notebook_server + "api/status")

    assert status["kernels"] == 0
    assert "started" in status


def test_jupyter_lists_the_hello_kubeflow_kernel(notebook_server: str) -> None:
    specs = get_json(notebook_server + "api/kernelspecs")["kernelspecs"]

    assert "hello-kubeflow" in specs
    spec = specs["hello-kubeflow"]["spec"]
    assert spec["argv"][0] == "/opt/hello-kubeflow/bin/python3"
    assert spec["display_name"] == "Python 3 (hello-kubeflow)"


def test_the_hello_kubeflow_kernel_imports_the_package_as_jovyan(notebook_server: str) -> None:
    code = (
        "import os, sys, hello_kubeflow, kfp, sklearn\n"
        "print(sys.executable, os.getuid(), os.environ['HOME'], hello_kubeflow.__version__)"
    )

    printed = run_in_kernel(notebook_server, "hello-kubeflow", code)

    assert printed.split() == ["/opt/hello-kubeflow/bin/python3", "1000", "/home/jovyan", "0.1.0"]


def test_the_model_server_runs_in_the_notebook_image_given_its_command(
    notebook_image: BuildPushResult, mnist_dir: Path, tmp_path: Path
) -> None:
    from serving_support import make_tiny_model, mnist_test_pixels

    from hello_kubeflow.model.train import load_model

    model_dir = make_tiny_model(mnist_dir, tmp_path / "model")
    pixels, _labels = mnist_test_pixels(mnist_dir, 2)
    expected = load_model(model_dir).predict_proba(pixels)
    body = json.dumps({"data": {"ndarray": pixels.tolist()}}).encode()

    image = notebook_image.plan.image
    with server_container(_settings(tmp_path), model_dir, image=image, port=0) as server:
        request = urllib.request.Request(
            server.url + "/api/v1.0/predictions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        entrypoint = server.container.attrs["Config"]["Entrypoint"]

    assert entrypoint == ["python3", "-m", "hello_kubeflow.serving"]
    np.testing.assert_allclose(answer["data"]["ndarray"], expected, atol=1e-5)


def test_pipeline_steps_run_in_the_notebook_image_given_their_command(
    notebook_image: BuildPushResult, mnist_dir: Path, tmp_path: Path
) -> None:
    from hello_kubeflow.model.artifact import latest_model_path
    from hello_kubeflow.pipeline.local import RunOptions, run_local

    settings = _settings(
        tmp_path,
        MNIST_DIR=str(mnist_dir),
        HK_PIPELINE_IMAGE=notebook_image.plan.image,
        HK_N_JOBS="1",
    )
    options = RunOptions(n_estimators=3, train_limit=1000, test_limit=200)

    summary = run_local(settings, options, runner="docker")

    assert summary.runner == "docker"
    assert summary.test_size == 200
    assert (latest_model_path(settings.output_dir) / "metadata.json").is_file()


def test_local_notebook_serves_this_checkout_behind_a_token(
    notebook_image: BuildPushResult, tmp_path: Path
) -> None:
    """`inv notebook` locally: the checkout mounted, a token required, files the user owns."""
    from hello_kubeflow.notebook.local import notebook_container

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "README.md").write_text("# hello\n")
    image = notebook_image.plan.image

    with notebook_container(_settings(tmp_path), checkout, image=image, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.login_url == f"{server.url}?token={server.token}"
        listing = get_json(f"{server.url}api/contents?token={server.token}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            get_json(f"{server.url}api/contents")
        write = urllib.request.Request(
            f"{server.url}api/contents/written.txt?token={server.token}",
            data=json.dumps({"type": "file", "format": "text", "content": "x"}).encode(),
            headers={"Content-Type": "application/json"},
            method="PUT",
        )
        urllib.request.urlopen(write, timeout=30).close()

    assert [entry["name"] for entry in listing["content"]] == ["README.md"]
    assert refused.value.code == 403
    assert (checkout / "written.txt").stat().st_uid == os.getuid()


def test_local_notebook_from_an_image_without_jupyter_says_how_to_build_one(
    base_image: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The plain Debian/Python base has no Jupyter server: a clear error, no container left."""
    from hello_kubeflow.errors import ServingError
    from hello_kubeflow.notebook.local import notebook_container

    with (
        pytest.raises(ServingError) as caught,
        notebook_container(_settings(tmp_path), tmp_path, image=base_image, port=0),
    ):
        pass

    message = str(caught.value)
    assert "exited before answering" in message
    assert "has no Jupyter server" in message
    assert "build it on a notebook image" in message


def test_local_notebook_on_a_taken_port_says_so_and_leaves_no_container(
    base_image: str,  # noqa: F811
    docker_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Docker creates the container, then cannot bind the port: the container goes too."""
    from hello_kubeflow.errors import ServingError
    from hello_kubeflow.images.lifecycle import LABEL
    from hello_kubeflow.notebook.local import notebook_container

    def ours() -> set[str]:
        found = docker_client.containers.list(
            all=True, filters={"label": f"{LABEL}=notebook-server", "ancestor": base_image}
        )
        return {container.id for container in found}

    before = ours()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(ServingError) as caught,
            notebook_container(_settings(tmp_path), tmp_path, image=base_image, port=port),
        ):
            pass

    assert f"is port {port} on 127.0.0.1 free?" in str(caught.value)
    assert ours() - before == set()
