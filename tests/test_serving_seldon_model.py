"""`MnistClassifier` in-process, and under the real Seldon Core 1.x wrapper in its own venv."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serving_support import call, free_port, make_tiny_model, mnist_test_pixels

from hello_kubeflow.answers import check_answer
from hello_kubeflow.errors import ModelError
from hello_kubeflow.model import load_model
from hello_kubeflow.serving.features import BadInput
from hello_kubeflow.serving.seldon_model import MnistClassifier
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
VENV_SCRIPT = REPO / "scripts" / "seldon_venv.sh"
VENV_SECONDS = 900
START_SECONDS = 90.0
CLASS_PATH = "hello_kubeflow.serving.seldon_model.MnistClassifier"


@pytest.fixture(scope="module")
def model_dir(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(mnist_dir, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def pixels(mnist_dir: Path) -> np.ndarray:
    return mnist_test_pixels(mnist_dir)[0][:3]


def test_predict_gives_the_models_probabilities(model_dir: Path, pixels: np.ndarray) -> None:
    classifier = MnistClassifier(str(model_dir))
    answer = classifier.predict(pixels.astype(np.float64), [])
    assert answer.shape == (3, 10)
    np.testing.assert_allclose(answer, load_model(model_dir).predict_proba(pixels), atol=1e-7)
    assert classifier.class_names() == [f"class:{d}" for d in range(10)]


def test_bad_input_outside_the_wrapper_is_bad_input(model_dir: Path) -> None:
    with pytest.raises(BadInput, match="look like raw 0-255 pixels"):
        MnistClassifier(str(model_dir)).predict(np.full((1, 784), 255.0), [])


def test_metadata_and_health(model_dir: Path) -> None:
    classifier = MnistClassifier(str(model_dir), model_name="digits")
    metadata = classifier.init_metadata()
    assert metadata["name"] == "digits"
    assert metadata["platform"] == "onnxruntime"
    assert all(isinstance(v, str) for v in metadata["custom"].values())
    assert classifier.health_status() == "healthy"


def test_model_dir_comes_from_hk_model_dir(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("HK_MODEL_DIR", str(model_dir))
    assert MnistClassifier().predict(np.zeros((1, 784)), []).shape == (1, 10)


def test_no_model_dir_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="HK_MODEL_DIR"):
        MnistClassifier()


# ---- the real seldon-core wrapper, in its own virtual environment


@pytest.fixture(scope="session")
def seldon_venv() -> Path:
    """The venv `scripts/seldon_venv.sh` makes (cached); skip when it cannot be made."""
    import sklearn

    try:
        made = subprocess.run(
            ["bash", str(VENV_SCRIPT)],
            env={**os.environ, "SKLEARN_VERSION": sklearn.__version__},
            capture_output=True,
            text=True,
            timeout=VENV_SECONDS,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"creating the seldon-core venv took over {VENV_SECONDS} s")
    if made.returncode != 0:
        reason = (made.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot create the seldon-core venv ({VENV_SCRIPT.name}): {reason}")
    return Path(made.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def wrapper_url(
    seldon_venv: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`seldon-core-microservice` serving our class, exactly as a cluster image runs it."""
    port, metrics = free_port(), free_port()
    log = tmp_path_factory.mktemp("wrapper") / "wrapper.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                str(seldon_venv / "bin" / "seldon-core-microservice"),
                CLASS_PATH,
                "--service-type",
                "MODEL",
                "--http-port",
                str(port),
                "--metrics-port",
                str(metrics),
                "--grpc-workers",
                "0",
                "--workers",
                "1",
            ],
            cwd=log.parent,
            env={
                "PATH": os.environ["PATH"],
                "PYTHONPATH": str(REPO),
                "HK_MODEL_DIR": str(model_dir),
            },
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its gunicorn workers share our child's process group
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"seldon-core-microservice exited:\n{log.read_text()[-3000:]}")
            try:
                if call(url + "/health/ping")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"seldon-core-microservice did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _request(pixels: np.ndarray, kind: str = "ndarray") -> bytes:
    if kind == "tensor":
        data = {"tensor": {"shape": list(pixels.shape), "values": pixels.ravel().tolist()}}
    else:
        data = {"ndarray": pixels.tolist()}
    return json.dumps({"data": data}).encode()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ndarray", "tensor"])
def test_real_wrapper_serves_our_class_with_the_same_answers_as_our_server(
    wrapper_url: str, model_dir: Path, pixels: np.ndarray, kind: str
) -> None:
    status, theirs = call(wrapper_url + "/api/v1.0/predictions", _request(pixels, kind))
    assert status == 200, theirs
    check_answer(theirs, "seldon", rows=len(pixels))
    with running_server(Settings(serve_port=0), model_dir) as ours:
        _, mine = call(ours.url + "/api/v1.0/predictions", _request(pixels, kind))
    assert theirs["data"]["names"] == mine["data"]["names"]
    assert kind in theirs["data"]
    np.testing.assert_allclose(
        np.asarray(theirs["data"][kind]["values"] if kind == "tensor" else theirs["data"][kind]),
        np.asarray(mine["data"][kind]["values"] if kind == "tensor" else mine["data"][kind]),
        atol=1e-6,
    )


@pytest.mark.slow
def test_real_wrapper_turns_bad_input_into_a_400_saying_why(wrapper_url: str) -> None:
    status, body = call(wrapper_url + "/api/v1.0/predictions", _request(np.full((1, 784), 255.0)))
    assert status == 400
    assert body["status"]["reason"] == "MICROSERVICE_BAD_DATA"
    assert "divide them by 255" in body["status"]["info"]
    assert call(wrapper_url + "/health/ping") == (200, "pong")


@pytest.mark.slow
def test_real_wrapper_metadata_and_health_match_ours(wrapper_url: str, model_dir: Path) -> None:
    assert call(wrapper_url + "/health/status") == (200, {"strData": "healthy", "meta": {}})
    status, theirs = call(wrapper_url + "/metadata")
    assert status == 200
    with running_server(Settings(serve_port=0), model_dir) as ours:
        assert call(ours.url + "/api/v1.0/metadata") == (200, theirs)


@pytest.mark.slow
def test_official_seldon_client_talks_to_our_server(seldon_venv: Path, model_dir: Path) -> None:
    """SeldonClient.microservice posts form-encoded json=...; our server must answer it."""
    script = (
        "import sys, numpy as np\n"
        "from seldon_core.seldon_client import SeldonClient\n"
        "client = SeldonClient(microservice_endpoint=sys.argv[1])\n"
        "for kind in ('ndarray', 'tensor'):\n"
        "    r = client.microservice(\n"
        "        data=np.full((2, 784), 0.1), method='predict', payload_type=kind\n"
        "    )\n"
        "    assert r.success, r.msg\n"
        "    assert list(r.response.data.names) == [f'class:{d}' for d in range(10)], r.response\n"
        "print('ok')\n"
    )
    with running_server(Settings(serve_port=0), model_dir) as ours:
        completed = subprocess.run(
            [str(seldon_venv / "bin" / "python"), "-c", script, ours.url.removeprefix("http://")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().endswith("ok")
