"""The model server over real HTTP: both protocols, batches, every bad input, still healthy."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import numpy as np
import pytest
from serving_support import call, make_tiny_model, mnist_test_pixels

from hello_kubeflow.model import load_model
from hello_kubeflow.serving.server import RunningServer, running_server
from hello_kubeflow.settings import Settings

NAMES = [f"class:{d}" for d in range(10)]
LIMIT = 200_000  # a small body limit, so the oversized cases stay small


@pytest.fixture(scope="module")
def model_dir(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(mnist_dir, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[RunningServer]:
    settings = Settings(serve_port=0, max_body_bytes=LIMIT)
    with running_server(settings, model_dir) as running:
        yield running


@pytest.fixture(scope="module")
def images(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return mnist_test_pixels(mnist_dir)


def _seldon(rows: object) -> bytes:
    return json.dumps(
        {"data": {"names": [f"X{i}" for i in range(1, 785)], "ndarray": rows}}
    ).encode()


def _assert_healthy(server: RunningServer, images: tuple[np.ndarray, np.ndarray]) -> None:
    assert call(server.url + "/health/ping") == (200, "pong")
    status, body = call(server.url + "/api/v1.0/predictions", _seldon(images[0][:1].tolist()))
    assert status == 200 and len(body["data"]["ndarray"]) == 1


@pytest.mark.parametrize("path", ["/api/v1.0/predictions", "/api/v0.1/predictions", "/predict"])
def test_seldon_routes_answer_ten_named_probabilities(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], model_dir: Path, path: str
) -> None:
    pixels = images[0][:1]
    status, body = call(server.url + path, _seldon(pixels.tolist()))
    assert status == 200
    assert body["data"]["names"] == NAMES
    [row] = body["data"]["ndarray"]
    expected = load_model(model_dir).predict_proba(pixels)[0]
    np.testing.assert_allclose(row, expected, atol=1e-6)
    assert abs(sum(row) - 1) < 1e-5
    assert set(body["meta"]) >= {"puid", "tags", "routing"}


def test_a_batch_gets_one_row_per_image_with_the_models_digits(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], model_dir: Path
) -> None:
    pixels = images[0]
    status, body = call(server.url + "/api/v1.0/predictions", _seldon(pixels.tolist()))
    assert status == 200
    digits = np.argmax(body["data"]["ndarray"], axis=1)
    assert digits.tolist() == load_model(model_dir).predict(pixels).tolist()


def test_tensor_in_gives_tensor_out(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels = images[0][:3]
    request = {"data": {"tensor": {"shape": [3, 784], "values": pixels.ravel().tolist()}}}
    status, body = call(server.url + "/api/v1.0/predictions", json.dumps(request).encode())
    assert status == 200
    assert body["data"]["tensor"]["shape"] == [3, 10]
    assert len(body["data"]["tensor"]["values"]) == 30
    assert "ndarray" not in body["data"]


def test_form_encoded_json_field_as_seldon_client_sends_it(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    form = urlencode({"json": _seldon(images[0][:2].tolist()).decode()}).encode()
    status, body = call(
        server.url + "/predict",
        form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    assert len(body["data"]["ndarray"]) == 2


def test_get_predict_with_json_query_argument(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    message = quote(_seldon(images[0][:1].tolist()).decode())
    status, body = call(f"{server.url}/predict?json={message}")
    assert status == 200
    assert body["data"]["names"] == NAMES


def test_puid_and_tags_are_echoed_and_a_puid_made_when_absent(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    request = json.loads(_seldon(images[0][:1].tolist()))
    request["meta"] = {"puid": "abc123", "tags": {"team": "mnist"}}
    _, echoed = call(server.url + "/api/v1.0/predictions", json.dumps(request).encode())
    assert echoed["meta"]["puid"] == "abc123"
    assert echoed["meta"]["tags"] == {"team": "mnist"}
    _, fresh = call(server.url + "/api/v1.0/predictions", _seldon(images[0][:1].tolist()))
    assert len(fresh["meta"]["puid"]) == 26


def test_v2_infer_answers_fp32_probabilities(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels = images[0][:2]
    request = {
        "id": "req-1",
        "inputs": [
            {
                "name": "input",
                "shape": [2, 784],
                "datatype": "FP32",
                "data": pixels.ravel().tolist(),
            }
        ],
    }
    status, body = call(
        server.url + "/v2/models/mnist-classifier/infer", json.dumps(request).encode()
    )
    assert status == 200
    assert body["id"] == "req-1"
    assert body["model_name"] == "mnist-classifier"
    [output] = body["outputs"]
    assert (output["name"], output["shape"], output["datatype"]) == (
        "probabilities",
        [2, 10],
        "FP32",
    )
    assert output["parameters"]["class_names"].split(",") == NAMES
    np.testing.assert_allclose(np.sum(np.reshape(output["data"], (2, 10)), axis=1), 1, atol=1e-5)


def test_v2_accepts_nested_data(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    request = {
        "inputs": [
            {"name": "x", "shape": [1, 784], "datatype": "FP64", "data": images[0][:1].tolist()}
        ]
    }
    status, _ = call(server.url + "/v2/models/mnist-classifier/infer", json.dumps(request).encode())
    assert status == 200


def test_v2_unknown_model_is_404_in_v2_form(server: RunningServer) -> None:
    status, body = call(server.url + "/v2/models/fruit/infer", b"{}")
    assert status == 404
    assert "mnist-classifier" in body["error"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/health/ping", "pong"),
        ("/health/status", {"strData": "healthy", "meta": {}}),
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        ("/v2/models/mnist-classifier/ready", {"name": "mnist-classifier", "ready": True}),
    ],
)
def test_health_endpoints(server: RunningServer, path: str, expected: object) -> None:
    assert call(server.url + path) == (200, expected)


def test_seldon_metadata_names_inputs_outputs_and_version(
    server: RunningServer, model_dir: Path
) -> None:
    status, body = call(server.url + "/api/v1.0/metadata")
    assert status == 200
    assert body["name"] == "mnist-classifier"
    assert body["versions"] == [load_model(model_dir).metadata["version"]]
    assert body["platform"] == "onnxruntime"
    assert body["inputs"][0]["schema"]["shape"] == [784]
    assert body["outputs"][0]["schema"]["names"] == NAMES


def test_v2_metadata_gives_shapes(server: RunningServer) -> None:
    status, body = call(server.url + "/v2/models/mnist-classifier")
    assert status == 200
    assert body["inputs"][0]["shape"] == [-1, 784]
    assert body["outputs"][0]["shape"] == [-1, 10]


def test_openapi_describes_every_route(server: RunningServer) -> None:
    from hello_kubeflow.serving.app import create_app

    status, document = call(server.url + "/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.")
    app = create_app(
        load_model(server.model_dir), model_name="mnist-classifier", max_body_bytes=LIMIT
    )
    for route in app.routes:
        methods = {m.lower() for m in route.methods or ()} - {"head"}  # type: ignore[attr-defined]
        described = document["paths"][route.path]  # type: ignore[attr-defined]
        assert methods <= set(described), route.path  # type: ignore[attr-defined]


ROW = [0.5] * 784
BAD_SELDON = [
    (b"{", "not valid JSON"),
    (b"", "body is empty"),
    (b'{"data": {"ndarray": [[NaN]]}}', "NaN"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"meta": {}}).encode(), 'no "data"'),
    (json.dumps({"strData": "seven"}).encode(), "not strData"),
    (json.dumps({"data": {"ndarray": [ROW[:783]]}}).encode(), "783 values, expected 784"),
    (json.dumps({"data": {"ndarray": [ROW, ROW[:700]]}}).encode(), "unequal lengths"),
    (json.dumps({"data": {"ndarray": [["0.5"] * 784]}}).encode(), "a string"),
    (json.dumps({"data": {"ndarray": [[None] * 784]}}).encode(), "null"),
    (json.dumps({"data": {"ndarray": [[2.0] * 784]}}).encode(), "outside"),
    (json.dumps({"data": {"ndarray": [[-0.5] * 784]}}).encode(), "outside"),
    (json.dumps({"data": {"ndarray": []}}).encode(), "empty batch"),
    (json.dumps({"data": {"ndarray": ROW}}).encode(), "wrap it in a list"),
    (
        json.dumps({"data": {"ndarray": [[1e400]]}}).encode().replace(b"Infinity", b"1e400"),
        "infinity",
    ),
    (
        json.dumps({"data": {"tensor": {"shape": [1, 784], "values": ROW[:10]}}}).encode(),
        "needs 784",
    ),
    (json.dumps({"data": {"tensor": {"shape": "1x784", "values": ROW}}}).encode(), "shape"),
    (json.dumps({"data": {"names": ["a"], "ndarray": [ROW]}}).encode(), "1 names"),
]


@pytest.mark.parametrize(("body", "complaint"), BAD_SELDON, ids=[c for _, c in BAD_SELDON])
def test_bad_seldon_input_is_400_in_seldon_error_form_and_server_keeps_serving(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], body: bytes, complaint: str
) -> None:
    status, answer = call(server.url + "/api/v1.0/predictions", body)
    assert status == 400
    assert answer["status"]["reason"] == "MICROSERVICE_BAD_DATA"
    assert answer["status"]["status"] == "FAILURE"
    assert answer["status"]["code"] == 400
    assert complaint in answer["status"]["info"]
    _assert_healthy(server, images)


def test_pixels_0_255_are_refused_with_a_hint_to_divide_by_255(
    server: RunningServer, mnist_dir: Path
) -> None:
    from hello_kubeflow.mnist import load_mnist

    raw = load_mnist(Settings(mnist_dir=mnist_dir)).x_test[:1].astype(int).tolist()
    status, answer = call(server.url + "/api/v1.0/predictions", _seldon(raw))
    assert status == 400
    assert "0-255 pixels: divide them by 255" in answer["status"]["info"]


BAD_V2 = [
    (b"nope", "not valid JSON"),
    (json.dumps({"inputs": []}).encode(), "exactly one tensor"),
    (
        json.dumps({"inputs": [{"shape": [1, 784], "datatype": "BYTES", "data": ["a"]}]}).encode(),
        "datatype",
    ),
    (
        json.dumps({"inputs": [{"shape": [1, 784], "datatype": "FP32", "data": ROW[:5]}]}).encode(),
        "needs 784",
    ),
    (
        json.dumps(
            {"inputs": [{"shape": [1, 784], "datatype": "FP32", "data": [7.0] * 784}]}
        ).encode(),
        "outside",
    ),
    (
        json.dumps({"inputs": [{"shape": [0, 784], "datatype": "FP32", "data": []}]}).encode(),
        "empty batch",
    ),
]


@pytest.mark.parametrize(("body", "complaint"), BAD_V2, ids=[c for _, c in BAD_V2])
def test_bad_v2_input_is_400_with_an_error_field(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], body: bytes, complaint: str
) -> None:
    status, answer = call(server.url + "/v2/models/mnist-classifier/infer", body)
    assert status == 400
    assert complaint in answer["error"]
    _assert_healthy(server, images)


def test_multipart_is_415(server: RunningServer) -> None:
    status, answer = call(
        server.url + "/predict",
        b"--x--",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert status == 415
    assert "json=" in answer["status"]["info"]


def test_oversized_body_is_413_and_server_keeps_serving(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    rows = [ROW] * (LIMIT // 3000)  # ~ 1.5 x the limit
    status, answer = call(server.url + "/api/v1.0/predictions", _seldon(rows))
    assert status == 413
    assert "HK_MAX_BODY_BYTES" in answer["status"]["info"]
    _assert_healthy(server, images)


def test_oversized_chunked_body_is_413_while_reading(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    chunks = (b"[" * 1000 for _ in range(LIMIT // 1000 + 50))
    connection.request(
        "POST",
        "/api/v1.0/predictions",
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["status"]["code"] == 413
    connection.close()
    _assert_healthy(server, images)


def test_wrong_method_is_405_in_seldon_form(server: RunningServer) -> None:
    status, answer = call(server.url + "/api/v1.0/predictions")
    assert status == 405
    assert answer["status"]["status"] == "FAILURE"
