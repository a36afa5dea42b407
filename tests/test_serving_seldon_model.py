"""`MnistClassifier` in-process, and under the real Seldon Core 1.x wrapper in its own venv."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import pytest
from serving_support import call, free_port, make_tiny_model, mnist_test_pixels

from hello_kubeflow.errors import ModelError
from hello_kubeflow.model.train import PRESETS, load_model
from hello_kubeflow.query.answers import check_answer
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


@pytest.fixture(scope="module")
def five(mnist_dir: Path) -> np.ndarray:
    return mnist_test_pixels(mnist_dir)[0][:5]


def test_predict_gives_the_models_probabilities(model_dir: Path, pixels: np.ndarray) -> None:
    classifier = MnistClassifier(str(model_dir))
    answer = classifier.predict(pixels.astype(np.float64), [])
    assert answer.shape == (3, 10)
    np.testing.assert_allclose(answer, load_model(model_dir).predict_proba(pixels), atol=1e-7)
    assert classifier.class_names() == [f"class:{d}" for d in range(10)]


def test_bad_input_outside_the_wrapper_is_bad_input(model_dir: Path) -> None:
    with pytest.raises(BadInput, match="look like raw 0-255 pixels"):
        MnistClassifier(str(model_dir)).predict(np.full((1, 784), 255.0), [])


def test_names_must_be_none_or_784_as_our_server_wants(model_dir: Path, pixels: np.ndarray) -> None:
    classifier = MnistClassifier(str(model_dir))
    assert classifier.predict(pixels, [f"X{i}" for i in range(1, 785)]).shape == (3, 10)
    with pytest.raises(BadInput, match=r"data\.names has 1 names for 784 features"):
        classifier.predict(pixels, ["a"])


def test_json_data_rows_with_a_boolean_are_refused(model_dir: Path) -> None:
    """jsonData reaches the class as the client sent it: a boolean is still visible."""
    with pytest.raises(BadInput, match=r"data\[0\]\[1\] is true \(a boolean\)"):
        MnistClassifier(str(model_dir)).predict([[0.5, True, *[0.5] * 782]], [])


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
def seldon_venv(user_cache_dir: Path) -> Path:
    """The venv `scripts/seldon_venv.sh` makes (cached); skip when it cannot be made.

    `HK_TEST_SELDON_VENV` puts it elsewhere than the script's default (the user's cache folder).
    """
    import sklearn

    where = [os.environ["HK_TEST_SELDON_VENV"]] if os.environ.get("HK_TEST_SELDON_VENV") else []
    try:
        made = subprocess.run(
            ["bash", str(VENV_SCRIPT), *where],
            env={
                **os.environ,
                "HK_CACHE_DIR": str(user_cache_dir),
                "SKLEARN_VERSION": sklearn.__version__,
            },
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


@contextmanager
def _wrapper(seldon_venv: Path, model_dir: Path, log_dir: Path) -> Iterator[str]:
    """`seldon-core-microservice` serving our class, exactly as a cluster image runs it."""
    port, metrics = free_port(), free_port()
    log = log_dir / "wrapper.log"
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


@pytest.fixture(scope="module")
def wrapper_url(
    seldon_venv: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with _wrapper(seldon_venv, model_dir, tmp_path_factory.mktemp("wrapper")) as url:
        yield url


@pytest.fixture(scope="module")
def our_url(model_dir: Path) -> Iterator[str]:
    with running_server(Settings(serve_port=0), model_dir) as ours:
        yield ours.url


def _request(pixels: np.ndarray, kind: str = "ndarray") -> bytes:
    if kind == "tensor":
        data = {"tensor": {"shape": list(pixels.shape), "values": pixels.ravel().tolist()}}
    else:
        data = {"ndarray": pixels.tolist()}
    return json.dumps({"data": data}).encode()


# ---- differential: the same requests to the wrapper running our class and to our server

FEATURES = [f"X{i}" for i in range(1, 785)]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SAME = "same"


@dataclass(frozen=True)
class Exchange:
    """One request, sent alike to both servers, and how their answers must compare.

    `difference` is SAME, or says why we answer otherwise on purpose; then
    `theirs` and `ours` are the two status codes.
    """

    name: str
    path: str
    message: Callable[[np.ndarray], Any]  # the message, given five MNIST test images
    form: bool = False
    query: bool = False
    encoding: str = "utf-8"  # the body's text encoding...
    charset: str = ""  # ...and the charset its Content-Type names, if any
    difference: str = SAME
    theirs: int = 0
    ours: int = 0


def _rows(pixels: np.ndarray, n: int) -> list[list[float]]:
    return pixels[:n].tolist()


def _tensor(pixels: np.ndarray, n: int) -> dict[str, Any]:
    return {"shape": [n, 784], "values": pixels[:n].ravel().tolist()}


ROW = [0.5] * 784
P = "/api/v1.0/predictions"
METRIC = {"key": "k", "type": "GAUGE", "value": 2.5, "tags": {"t": "v"}}
BAD_META: dict[str, dict[str, Any]] = {
    "puid": {"puid": 5},
    "tags": {"tags": [1]},
    "routing": {"routing": {"m": "a"}},
    "requestPath": {"requestPath": {"m": 1}},
    "metrics": {"metrics": [1]},
}


def _with_meta(pixels: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"ndarray": _rows(pixels, 1)}, "meta": meta}


def _feedback_with_meta(pixels: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
    return {"request": _with_meta(pixels, meta), "reward": 1}


def _exchanges() -> list[Exchange]:
    return [
        Exchange("ndarray, one row", P, lambda p: {"data": {"ndarray": _rows(p, 1)}}),
        Exchange("ndarray, five rows", P, lambda p: {"data": {"ndarray": _rows(p, 5)}}),
        Exchange("tensor, one row", P, lambda p: {"data": {"tensor": _tensor(p, 1)}}),
        Exchange("tensor, five rows", P, lambda p: {"data": {"tensor": _tensor(p, 5)}}),
        Exchange("names", P, lambda p: {"data": {"names": FEATURES, "ndarray": _rows(p, 2)}}),
        Exchange("UTF-8 BOM", P, lambda p: {"jsonData": _rows(p, 1)}, encoding="utf-8-sig"),
        Exchange(
            "UTF-16, declared",
            P,
            lambda p: {"data": {"ndarray": _rows(p, 2)}},
            encoding="utf-16",
            charset="utf-16",
        ),
        Exchange(
            "UTF-16BE, declared",
            P,
            lambda p: {"data": {"tensor": _tensor(p, 1)}},
            encoding="utf-16-be",
            charset="UTF-16BE",
        ),
        Exchange("jsonData, one row", P, lambda p: {"jsonData": _rows(p, 1)}),
        Exchange("jsonData, five rows", P, lambda p: {"jsonData": _rows(p, 5)}),
        Exchange("API v0.1", "/api/v0.1/predictions", lambda p: {"data": {"ndarray": _rows(p, 2)}}),
        Exchange("/predict", "/predict", lambda p: {"data": {"tensor": _tensor(p, 2)}}),
        Exchange("form json=", "/predict", lambda p: {"data": {"ndarray": _rows(p, 2)}}, form=True),
        Exchange("form json=, v1.0", P, lambda p: {"data": {"tensor": _tensor(p, 1)}}, form=True),
        # gunicorn refuses request lines over 4094 bytes: a blank image, written compactly.
        Exchange(
            "GET ?json=", "/predict", lambda p: {"data": {"ndarray": [[0] * 784]}}, query=True
        ),
        Exchange(
            "puid and tags",
            P,
            lambda p: {"data": {"ndarray": _rows(p, 1)}, "meta": {"puid": "p-1", "tags": {"a": 1}}},
        ),
        Exchange(
            "requestPath",
            P,
            lambda p: {"data": {"ndarray": _rows(p, 1)}, "meta": {"requestPath": {"m": "i:1"}}},
        ),
        Exchange("metrics", P, lambda p: _with_meta(p, {"metrics": [METRIC]})),
        Exchange("routing, dropped", P, lambda p: _with_meta(p, {"routing": {"m": 0}})),
        Exchange("tags of any JSON", P, lambda p: _with_meta(p, {"tags": {"a": [1, {"b": None}]}})),
        Exchange("empty puid", P, lambda p: _with_meta(p, {"puid": ""})),
        Exchange(
            "names, wrong count", P, lambda p: {"data": {"names": ["a"], "ndarray": _rows(p, 1)}}
        ),
        Exchange("0-255 pixels", P, lambda p: {"data": {"ndarray": [[255.0] * 784]}}),
        Exchange("783 values", P, lambda p: {"data": {"ndarray": [ROW[:783]]}}),
        Exchange("a row of booleans", P, lambda p: {"data": {"ndarray": [[True] * 784]}}),
        Exchange("jsonData object", P, lambda p: {"jsonData": {"x": 1}}),
        Exchange("strData", P, lambda p: {"strData": "seven"}),
        Exchange("feedback, reward", "/api/v1.0/feedback", lambda p: {"reward": 1}),
        Exchange(
            "feedback, ndarray request and puid",
            "/api/v0.1/feedback",
            lambda p: {
                "request": {"data": {"ndarray": _rows(p, 1)}, "meta": {"puid": "p-2"}},
                "response": {"data": {"ndarray": [[0.1] * 10]}},
                "reward": 0.5,
                "truth": {"data": {"ndarray": [[7]]}},
            },
        ),
        Exchange("send-feedback form", "/send-feedback", lambda p: {"reward": 2}, form=True),
        Exchange("feedback, unknown field", "/api/v1.0/feedback", lambda p: {"bogus": 1}),
        *(
            Exchange(
                f"feedback, meta.{field} of the wrong type",
                "/api/v1.0/feedback",
                partial(_feedback_with_meta, meta=meta),
            )
            for field, meta in BAD_META.items()
        ),
        Exchange(
            "feedback, unknown field in request",
            "/api/v1.0/feedback",
            lambda p: {"request": {"bogus": 1}},
        ),
        # Deliberate differences: a 400 saying why where the wrapper crashes with a 500...
        Exchange(
            "tensor of 66 dimensions",
            P,
            lambda p: {"data": {"tensor": {"shape": [1] * 65 + [784], "values": ROW}}},
            difference="the wrapper's numpy reshape raises, a 500; we say the shape is not 2-D",
            theirs=500,
            ours=400,
        ),
        Exchange(
            "meta that is a list",
            P,
            lambda p: {"data": {"ndarray": _rows(p, 1)}, "meta": []},
            difference="the wrapper calls .get on it, a 500; we say meta must be an object",
            theirs=500,
            ours=400,
        ),
        Exchange(
            "requestPath that is a list",
            P,
            lambda p: {"data": {"ndarray": _rows(p, 1)}, "meta": {"requestPath": ["m"]}},
            difference="the wrapper merges it as a mapping, a 500; we say it must be an object",
            theirs=500,
            ours=400,
        ),
        # ... a 400 for a meta field not of its type in prediction.proto's Meta, which the
        # wrapper echoes (or drops) as it came, whichever field it is...
        *(
            Exchange(
                f"meta.{field} of the wrong type",
                P,
                partial(_with_meta, meta=meta),
                difference="the wrapper echoes what no Seldon client can read as its Meta",
                theirs=200,
                ours=400,
            )
            for field, meta in BAD_META.items()
        ),
        # ... and a 400 where the wrapper cannot see the problem.
        Exchange(
            "a boolean among numbers",
            P,
            lambda p: {"data": {"ndarray": [[True, *ROW[1:]]]}},
            difference="the wrapper's np.array turns true into 1.0 before our class sees it",
            theirs=200,
            ours=400,
        ),
        Exchange(
            "feedback reward as a string",
            "/api/v1.0/feedback",
            lambda p: {"reward": "1.5"},
            difference="protobuf's JSON parser takes numeric strings; we want a number",
            theirs=200,
            ours=400,
        ),
    ]


EXCHANGES = _exchanges()


def _send(base: str, exchange: Exchange, pixels: np.ndarray) -> tuple[int, Any]:
    message = json.dumps(exchange.message(pixels), separators=(",", ":"))
    if exchange.query:
        return call(f"{base}{exchange.path}?json={quote(message, safe='[],:')}")
    if exchange.form:
        return call(base + exchange.path, urlencode({"json": message}).encode(), headers=FORM)
    charset = f"; charset={exchange.charset}" if exchange.charset else ""
    headers = {"Content-Type": "application/json" + charset}
    return call(base + exchange.path, message.encode(exchange.encoding), headers=headers)


def _structure(value: Any) -> Any:
    """A JSON value with every number and string replaced by its kind: its shape."""
    if isinstance(value, dict):
        return {key: _structure(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_structure(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    return "number" if isinstance(value, int | float) else "string"


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for key in sorted(value) for n in _numbers(value[key])]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _assert_same_answer(theirs: Any, ours: Any, status: int) -> None:
    if status >= 400:
        # The wrapper's error has code -1 and status 1 (flask_utils.py,
        # SeldonMicroserviceException.to_dict); ours the HTTP code and "FAILURE", the
        # name proto/prediction.proto gives 1, as the executor answers. Same fields.
        assert set(theirs) == set(ours) == {"status"}
        assert set(theirs["status"]) == set(ours["status"])
        assert (theirs["status"]["code"], theirs["status"]["status"]) == (-1, 1)
        assert (ours["status"]["code"], ours["status"]["status"]) == (status, "FAILURE")
        assert theirs["status"]["reason"] == ours["status"]["reason"]
        return
    # Our meta always has a puid (made when none was sent), tags and routing; the
    # wrapper's only what is not empty (utils.py, construct_response_json).
    their_meta, our_meta = theirs.pop("meta"), ours.pop("meta")
    assert set(our_meta) - set(their_meta) <= {"puid", "tags", "routing"}
    assert {key: our_meta[key] for key in their_meta} == their_meta
    assert _structure(theirs) == _structure(ours)
    np.testing.assert_allclose(_numbers(ours), _numbers(theirs), atol=1e-5)
    if "data" in theirs and "names" in theirs["data"]:
        assert theirs["data"]["names"] == ours["data"]["names"]


@pytest.mark.slow
@pytest.mark.parametrize("exchange", EXCHANGES, ids=[e.name for e in EXCHANGES])
def test_wrapper_and_our_server_answer_alike(
    wrapper_url: str, our_url: str, five: np.ndarray, exchange: Exchange
) -> None:
    """Same status, same JSON structure, numbers within 1e-5; differences are stated."""
    their_status, theirs = _send(wrapper_url, exchange, five)
    our_status, ours = _send(our_url, exchange, five)
    if exchange.difference != SAME:
        assert (their_status, our_status) == (exchange.theirs, exchange.ours), (theirs, ours)
        assert ours["status"]["reason"] == "MICROSERVICE_BAD_DATA"
        return
    assert their_status == our_status, (theirs, ours)
    _assert_same_answer(theirs, ours, our_status)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/health/status", "/api/v1.0/health/status"])
def test_wrapper_and_our_server_report_health_alike(
    wrapper_url: str, our_url: str, path: str
) -> None:
    assert (
        call(wrapper_url + path)
        == call(our_url + path)
        == (
            200,
            {"strData": "healthy", "meta": {}},
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_under_the_wrapper_answers_valid_probabilities_for_every_test_image(
    seldon_venv: Path,
    preset_model: Callable[[str], Path],
    full_mnist_dir: Path,
    tmp_path: Path,
    preset: str,
) -> None:
    """Through the wrapper too, 30 summed float32 weights (book) no longer pass 1."""
    from hello_kubeflow.data.mnist import load_mnist, scale_pixels

    model_dir = preset_model(preset)
    x_test = scale_pixels(load_mnist(Settings(mnist_dir=full_mnist_dir)).x_test)
    reference = load_model(model_dir).sklearn_predict_proba(x_test)
    with _wrapper(seldon_venv, model_dir, tmp_path) as url:
        for start in range(0, len(x_test), 500):
            batch = x_test[start : start + 500]
            status, answer = call(url + P, _request(batch, "tensor"))
            assert status == 200, answer
            check_answer(answer, "seldon", rows=len(batch))  # the query's sanity check
            values = np.reshape(answer["data"]["tensor"]["values"], (len(batch), 10))
            assert values.min() >= 0.0 and values.max() <= 1.0
            np.testing.assert_allclose(values, reference[start : start + 500], atol=1e-5)


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


def test_nan_reaching_the_class_from_the_wrapper_is_refused(model_dir: Path) -> None:
    """Seldon's wrapper decodes JSON itself (NaN allowed): the class still refuses it."""
    row = np.full((1, 784), 0.5)
    row[0, 3] = np.nan

    with pytest.raises(BadInput, match=r"data holds nan at row 0, column 3"):
        MnistClassifier(str(model_dir)).predict(row, [])
