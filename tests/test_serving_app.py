"""The model server over real HTTP: both protocols, batches, every bad input, still healthy."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import numpy as np
import pytest
from serving_support import call, make_tiny_model, mnist_test_pixels

from hello_kubeflow.model.train import load_model
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


def test_v2_serves_the_model_under_its_version_too(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    model = server.url + "/v2/models/mnist-classifier"
    metadata = call(model)
    [version] = metadata[1]["versions"]
    versioned = f"{model}/versions/{quote(version, safe='')}"
    assert call(versioned) == metadata
    assert call(versioned + "/ready") == call(model + "/ready")
    body = _v2(images[0][:1].ravel().tolist(), id="v-1")
    status, answer = call(versioned + "/infer", body)
    assert status == 200, answer
    assert (answer["id"], answer["model_version"]) == ("v-1", version)
    assert answer["outputs"] == call(model + "/infer", body)[1]["outputs"]


@pytest.mark.parametrize("suffix", ["", "/ready", "/infer"])
def test_v2_another_version_is_404_naming_the_served_one(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], suffix: str
) -> None:
    [version] = call(server.url + "/v2/models/mnist-classifier")[1]["versions"]
    body = _v2(images[0][:1].ravel().tolist()) if suffix == "/infer" else None
    url = server.url + "/v2/models/mnist-classifier/versions/0.9" + suffix
    status, answer = call(url, body)
    assert status == 404
    assert answer["error"] == (
        f"model 'mnist-classifier' has no version '0.9'; this server serves version "
        f"{version!r} (or leave /versions/... out of the URL)"
    )


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
    from hello_kubeflow.data.mnist import load_mnist

    raw = load_mnist(Settings(mnist_dir=mnist_dir)).x_test[:1].astype(int).tolist()
    status, answer = call(server.url + "/api/v1.0/predictions", _seldon(raw))
    assert status == 400
    assert "0-255 pixels: divide them by 255" in answer["status"]["info"]


def _v2(
    data: object, datatype: str = "FP32", shape: tuple[int, ...] = (1, 784), **more: object
) -> bytes:
    tensor = {"name": "input", "shape": list(shape), "datatype": datatype, "data": data}
    return json.dumps({"inputs": [tensor], **more}).encode()


BAD_V2 = [
    (b"nope", "not valid JSON"),
    (json.dumps({"inputs": []}).encode(), "exactly one tensor"),
    (_v2(["a"], "BYTES"), "datatype"),
    (_v2(ROW[:5]), "needs 784"),
    (_v2([7.0] * 784), "outside"),
    (_v2([], shape=(0, 784)), "empty batch"),
    (
        json.dumps({"inputs": [{"shape": [1, 784], "datatype": "FP32", "data": ROW}]}).encode(),
        'inputs[0] needs a "name"',
    ),
    (_v2(ROW, id=42), '"id" must be a string, e.g. "42"; got 42'),
    (_v2(ROW, "INT8"), "is INT8 but holds 0.5 at [0, 0]: an integer datatype takes whole numbers"),
    (_v2([[0] * 783 + [0.25]], "UINT16"), "holds 0.25 at [0, 783]"),
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
    """A chunked body has no length: the 413 comes once the count passes the limit.

    The client sends just past the limit and then waits, so that every byte it sent
    has been read when the server closes: a client still sending at that moment may
    see the connection reset instead of the answer (TCP drops unread data that way).
    """
    chunk = b"3E8\r\n" + b"[" * 1000 + b"\r\n"
    head = (
        "POST /api/v1.0/predictions HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with _raw_request(server, head, chunk * (LIMIT // 1000 + 1)) as sock:
        answer = _read_until_closed(sock)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    assert json.loads(body)["status"]["code"] == 413
    _assert_healthy(server, images)


def _raw_request(server: RunningServer, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode("ascii") + body)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (10 s at most)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize("expect", ["", "Expect: 100-continue\r\n"])
def test_declared_oversize_is_413_before_the_body_and_closes_the_connection(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], expect: str
) -> None:
    """No byte of the body is sent: the 413 (not "100 Continue") comes, then the close."""
    head = (
        "POST /api/v1.0/predictions HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {LIMIT + 1}\r\n{expect}\r\n"
    )
    with _raw_request(server, head) as sock:
        answer = _read_until_closed(sock)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    assert b"100 Continue" not in answer
    assert json.loads(body)["status"]["code"] == 413
    _assert_healthy(server, images)


def test_expect_100_continue_within_the_limit_gets_100_continue_then_the_answer(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    body = _seldon(images[0][:1].tolist())
    head = (
        "POST /api/v1.0/predictions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    with _raw_request(server, head) as sock:
        assert sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_wrong_method_is_405_in_seldon_form(server: RunningServer) -> None:
    status, answer = call(server.url + "/api/v1.0/predictions")
    assert status == 405
    assert answer["status"]["status"] == "FAILURE"


# ---- no 500 on odd input, booleans refused, protocol gaps against the wrapper

ODD_V2 = [
    ({"name": "input", "shape": [1, 784], "datatype": {}, "data": []}, "got {}"),
    ({"name": "input", "shape": [1, 784], "datatype": ["FP32"], "data": []}, 'got ["FP32"]'),
    ({"name": "input", "shape": [1] * 65 + [784], "datatype": "FP32", "data": ROW}, "66 dim"),
    ({"name": "input", "shape": [1, 1, 784], "datatype": "FP32", "data": ROW}, "3 dim"),
    ({"name": "input", "shape": [0, 2**62], "datatype": "FP32", "data": []}, "numpy can"),
    ({"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [True, *ROW[1:]]}, "true"),
]


@pytest.mark.parametrize(("tensor", "complaint"), ODD_V2, ids=[c for _, c in ODD_V2])
def test_odd_v2_tensors_are_400_not_500(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], tensor: object, complaint: str
) -> None:
    body = json.dumps({"inputs": [tensor]}).encode()
    status, answer = call(server.url + "/v2/models/mnist-classifier/infer", body)
    assert status == 400, answer
    assert complaint in answer["error"]
    _assert_healthy(server, images)


ODD_SELDON = [
    ({"data": {"tensor": {"shape": [1] * 65 + [784], "values": ROW}}}, "66 dimension(s)"),
    ({"data": {"tensor": {"shape": [784], "values": ROW}}}, "1 dimension(s)"),
    ({"data": {"ndarray": [[True, *ROW[1:]]]}}, "data.ndarray[0][0] is true (a boolean)"),
    ({"data": {"ndarray": [ROW, [*ROW[:5], False, *ROW[6:]]]}}, "data.ndarray[1][5] is false"),
    ({"data": {"tensor": {"shape": [1, 784], "values": [*ROW[:9], True, *ROW[10:]]}}}, "[9] is"),
    ({"jsonData": [[*ROW[:-1], True]]}, "jsonData[0][783] is true"),
    ({"jsonData": {"ndarray": [ROW]}}, "jsonData must be a list of rows"),
    ({"data": {"ndarray": [ROW]}, "meta": {"requestPath": ["model"]}}, "requestPath"),
]
# Every meta field is held to its type in Seldon's Meta message, none silently dropped.
BAD_META = [
    (
        {"puid": 5},
        'meta.puid must be a string, e.g. "p-1" (as Seldon\'s Meta message types it); got 5',
    ),
    ({"tags": [1]}, "meta.tags must be an object"),
    ({"tags": "team"}, 'meta.tags must be an object, e.g. {"team": "mnist"}'),
    ({"routing": {"model": "a"}}, "meta.routing must be an object of whole numbers"),
    ({"routing": {"model": 2**31}}, "meta.routing must be an object of whole numbers (int32)"),
    ({"routing": {"model": 0.5}}, "meta.routing must be an object of whole numbers (int32)"),
    ({"requestPath": {"model": 1}}, "meta.requestPath must be an object of strings"),
    ({"requestPath": "model"}, "meta.requestPath must be an object of strings"),
    ({"metrics": {"key": "k"}}, "meta.metrics must be a list of metrics"),
    ({"metrics": [{"key": "k", "type": "HISTOGRAM", "value": 1}]}, "meta.metrics must be a list"),
    ({"metrics": [{"key": "k", "value": "1"}]}, "meta.metrics must be a list"),
    ({"metrics": [{"key": "k", "type": {}}]}, "meta.metrics must be a list"),
]


@pytest.mark.parametrize(("meta", "complaint"), BAD_META, ids=[str(m) for m, _ in BAD_META])
def test_a_meta_field_of_the_wrong_type_is_400_naming_it(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], meta: object, complaint: str
) -> None:
    message = {"data": {"ndarray": images[0][:1].tolist()}, "meta": meta}
    status, answer = call(server.url + "/api/v1.0/predictions", json.dumps(message).encode())
    assert status == 400, answer
    assert complaint in answer["status"]["info"]


def test_meta_metrics_are_echoed_as_the_wrapper_echoes_them(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    metrics = [{"key": "requests", "type": "COUNTER", "value": 1, "tags": {"team": "mnist"}}]
    message = {"data": {"ndarray": images[0][:1].tolist()}, "meta": {"metrics": metrics}}
    status, answer = call(server.url + "/api/v1.0/predictions", json.dumps(message).encode())
    assert status == 200, answer
    assert answer["meta"]["metrics"] == metrics


@pytest.mark.parametrize(("message", "complaint"), ODD_SELDON, ids=[c for _, c in ODD_SELDON])
def test_odd_seldon_messages_are_400_saying_why(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], message: object, complaint: str
) -> None:
    status, answer = call(server.url + "/api/v1.0/predictions", json.dumps(message).encode())
    assert status == 400, answer
    assert complaint in answer["status"]["info"]
    _assert_healthy(server, images)


def test_true_outside_the_pixels_is_no_boolean_among_them(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    request = {"data": {"ndarray": images[0][:1].tolist()}, "meta": {"tags": {"ok": True}}}
    status, answer = call(server.url + "/api/v1.0/predictions", json.dumps(request).encode())
    assert status == 200
    assert answer["meta"]["tags"] == {"ok": True}


def test_json_data_rows_get_a_tensor_answer_as_the_wrapper_gives(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], model_dir: Path
) -> None:
    pixels = images[0][:2]
    request = json.dumps({"jsonData": pixels.tolist()}).encode()
    status, answer = call(server.url + "/api/v1.0/predictions", request)
    assert status == 200
    assert answer["data"]["names"] == NAMES
    assert answer["data"]["tensor"]["shape"] == [2, 10]
    expected = load_model(model_dir).predict_proba(pixels).ravel()
    np.testing.assert_allclose(answer["data"]["tensor"]["values"], expected, atol=1e-6)


def test_request_path_is_echoed(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray]
) -> None:
    request = {"data": {"ndarray": images[0][:1].tolist()}, "meta": {"requestPath": {"a": "b:1"}}}
    status, answer = call(server.url + "/api/v1.0/predictions", json.dumps(request).encode())
    assert status == 200
    assert answer["meta"]["requestPath"] == {"a": "b:1"}


@pytest.mark.parametrize(
    "content_type",
    ["Application/X-WWW-Form-Urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8"],
)
def test_media_types_are_compared_case_insensitively(
    server: RunningServer, images: tuple[np.ndarray, np.ndarray], content_type: str
) -> None:
    form = urlencode({"json": _seldon(images[0][:1].tolist()).decode()}).encode()
    status, answer = call(server.url + "/predict", form, headers={"Content-Type": content_type})
    assert status == 200, answer
    multipart = {"Content-Type": "Multipart/Form-Data; boundary=x"}
    status, answer = call(server.url + "/predict", b"--x--", headers=multipart)
    assert status == 415


def test_health_status_under_the_api_path(server: RunningServer) -> None:
    assert call(server.url + "/api/v1.0/health/status") == (
        200,
        {"strData": "healthy", "meta": {}},
    )


FEEDBACK = [
    ("/api/v1.0/feedback", {"reward": 1}, {"data": {"tensor": {"shape": [0]}}, "meta": {}}),
    (
        "/api/v0.1/feedback",
        {"request": {"data": {"ndarray": [ROW]}, "meta": {"puid": "p7"}}, "reward": 0.5},
        {"data": {"ndarray": []}, "meta": {"puid": "p7"}},
    ),
    ("/send-feedback", {"truth": {"data": {"ndarray": [[7]]}}}, None),
]


def test_feedback_is_accepted_answered_as_the_wrapper_does_and_counted(
    model_dir: Path, images: tuple[np.ndarray, np.ndarray]
) -> None:
    with running_server(Settings(serve_port=0), model_dir) as fresh:
        for path, message, expected in FEEDBACK:
            status, answer = call(fresh.url + path, json.dumps(message).encode())
            assert status == 200, answer
            if expected is not None:
                assert answer == expected
        form = urlencode({"json": json.dumps({"reward": 2})}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        assert call(fresh.url + "/send-feedback", form, headers=headers)[0] == 200
        status, metrics = call(fresh.url + "/metrics")
    assert status == 200
    assert 'seldon_api_model_feedback_total{method="feedback"} 3' in metrics
    assert 'seldon_api_model_feedback_reward_total{method="feedback"} 3.5' in metrics
    assert "hello_kubeflow_feedback_received_total 4" in metrics


BAD_FEEDBACK = [
    ({"bogus": 1}, "unknown field(s) bogus"),
    ({"request": {"bogus": 1}}, "feedback request has unknown field(s) bogus"),
    ({"request": {"data": {"ndarray": "x"}}}, "ndarray must be a list"),
    ({"reward": "x"}, "reward must be a finite number"),
    ([1], "must be a JSON object"),
    ({"request": {"meta": {"puid": 5}}}, "feedback request.meta.puid must be a string"),
    ({"truth": {"meta": {"tags": [1]}}}, "feedback truth.meta.tags must be an object"),
]


@pytest.mark.parametrize(("message", "complaint"), BAD_FEEDBACK, ids=[c for _, c in BAD_FEEDBACK])
def test_bad_feedback_is_400_saying_why(
    server: RunningServer, message: object, complaint: str
) -> None:
    status, answer = call(server.url + "/api/v1.0/feedback", json.dumps(message).encode())
    assert status == 400
    assert complaint in answer["status"]["info"]
