"""inv query against real HTTP endpoints that answer right, wrong, late or not at all."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fake_endpoint import GOOD_ROW, FakeEndpoint, seldon_answer
from inv_support import run_inv
from PIL import Image

from hello_kubeflow.data.mnist import load_test_images
from hello_kubeflow.errors import EndpointError, QueryError, SanityCheckError
from hello_kubeflow.query.client import connect_wait, query_accuracy, query_digit
from hello_kubeflow.settings import Settings


@pytest.fixture
def digit_png(tmp_path: Path) -> Path:
    """A drawn 7: dark strokes on white paper, as a person draws it."""
    image = Image.new("L", (120, 160), 255)
    pixels = np.asarray(image).copy()
    pixels[30:42, 20:100] = 0  # the bar of the 7
    for row in range(42, 140):  # its slanted stem
        col = 95 - (row - 42) // 2
        pixels[row, col - 6 : col + 6] = 0
    path = tmp_path / "seven.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default cache (which records verified MNIST files) under the test's own folder."""
    monkeypatch.setenv("HOME", str(tmp_path))


def _settings(url: str, **changes: object) -> Settings:
    return Settings(query_url=url, query_deadline=5.0, query_timeout=2.0).replace(**changes)


def test_query_prints_the_digit_and_top3_from_a_good_answer(digit_png: Path) -> None:
    with FakeEndpoint((200, seldon_answer([GOOD_ROW]))) as endpoint:
        result = query_digit(_settings(endpoint.url), image=digit_png)
    assert result.prediction == 7
    assert result.top3[0] == (7, 0.9)
    assert result.sanity.startswith("ok")
    assert result.label is None
    [(method, path, body)] = endpoint.received
    assert (method, path) == ("POST", "/api/v1.0/predictions")
    sent = json.loads(body)
    assert len(sent["data"]["ndarray"][0]) == 784
    assert sent["data"]["names"][:2] == ["X1", "X2"]


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (seldon_answer([GOOD_ROW], names=[f"t:{d}" for d in range(10)]), "class names"),
        (seldon_answer([GOOD_ROW[:9]]), "9 probabilities"),
        (seldon_answer([[0.2] * 10]), "sum to 2"),
        (seldon_answer([[-0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]]), "outside [0, 1]"),
        (77, "77"),
        (seldon_answer([[77]]), "1 probabilities"),
        (seldon_answer(77), "not a list"),
        ("orange drink", "orange drink"),
        (seldon_answer([["seven", *GOOD_ROW[1:]]]), "'seven'"),
        ({"strData": "orange drink"}, "strData"),
        (
            {"status": {"code": 500, "info": "model exploded", "status": "FAILURE"}},
            "model exploded",
        ),
        (seldon_answer([GOOD_ROW, GOOD_ROW]), "2 rows"),
    ],
    ids=[
        "wrong-names",
        "nine-probabilities",
        "not-summing-to-1",
        "negative",
        "77",
        "77-in-ndarray",
        "77-as-ndarray",
        "a-string",
        "a-string-probability",
        "strData",
        "error-body",
        "too-many-rows",
    ],
)
def test_sanity_check_fails_on_a_wrong_answer(
    digit_png: Path, answer: object, complaint: str
) -> None:
    with FakeEndpoint((200, answer)) as endpoint, pytest.raises(SanityCheckError) as raised:
        query_digit(_settings(endpoint.url), image=digit_png)
    assert "sanity check failed" in str(raised.value)
    assert complaint in str(raised.value)


def test_v2_answer_passes_the_sanity_check(digit_png: Path) -> None:
    answer = {
        "model_name": "mnist-classifier",
        "outputs": [
            {"name": "probabilities", "shape": [1, 10], "datatype": "FP32", "data": GOOD_ROW}
        ],
    }
    with FakeEndpoint((200, answer)) as endpoint:
        result = query_digit(_settings(endpoint.url), image=digit_png, protocol="v2")
    assert result.prediction == 7
    [(_, path, body)] = endpoint.received
    assert path == "/v2/models/mnist-classifier/infer"
    assert json.loads(body)["inputs"][0]["shape"] == [1, 784]


def test_v2_answer_with_wrong_class_names_fails(digit_png: Path) -> None:
    output = {
        "name": "probabilities",
        "shape": [1, 10],
        "datatype": "FP32",
        "parameters": {"class_names": ",".join(f"fruit:{d}" for d in range(10))},
        "data": GOOD_ROW,
    }
    with FakeEndpoint((200, {"outputs": [output]})) as endpoint, pytest.raises(SanityCheckError):
        query_digit(_settings(endpoint.url), image=digit_png, protocol="v2")


def test_query_retries_503_then_succeeds(digit_png: Path) -> None:
    loading = {"status": {"code": 503, "info": "model loading", "status": "FAILURE"}}
    with FakeEndpoint((503, loading), (503, loading), (200, seldon_answer([GOOD_ROW]))) as endpoint:
        result = query_digit(_settings(endpoint.url), image=digit_png)
    assert result.prediction == 7
    assert len(endpoint.received) == 3


def test_query_does_not_retry_400_and_shows_the_servers_message(digit_png: Path) -> None:
    refusal = {"status": {"code": 400, "info": "rows have 783 values", "status": "FAILURE"}}
    with FakeEndpoint((400, refusal)) as endpoint, pytest.raises(EndpointError) as raised:
        query_digit(_settings(endpoint.url), image=digit_png)
    assert len(endpoint.received) == 1
    assert "HTTP 400" in str(raised.value)
    assert "rows have 783 values" in str(raised.value)


def test_query_gives_up_on_503_at_the_deadline(digit_png: Path) -> None:
    with FakeEndpoint((503, "busy")) as endpoint, pytest.raises(EndpointError) as raised:
        query_digit(_settings(endpoint.url, query_deadline=0.5), image=digit_png)
    assert "503" in str(raised.value)
    assert len(endpoint.received) >= 2


def test_query_to_a_server_that_never_answers_times_out_naming_the_setting(
    digit_png: Path,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(
            EndpointError, match=r"did not answer within 0.5 s \(HK_QUERY_TIMEOUT\)"
        ):
            query_digit(_settings(url, query_timeout=0.5), image=digit_png)


def test_query_to_a_server_that_stalls_mid_answer_times_out_naming_the_setting(
    digit_png: Path,
) -> None:
    """Headers and part of the body, then nothing: a timeout, not "no server is running"."""
    with socket.socket() as stalling:
        stalling.bind(("127.0.0.1", 0))
        stalling.listen()
        url = f"http://127.0.0.1:{stalling.getsockname()[1]}"
        accepted: list[socket.socket] = []

        def answer_in_part() -> None:
            conn, _ = stalling.accept()
            accepted.append(conn)
            conn.recv(65536)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"data"')

        thread = threading.Thread(target=answer_in_part, daemon=True)
        thread.start()
        try:
            with pytest.raises(
                EndpointError, match=r"did not answer within 0.5 s \(HK_QUERY_TIMEOUT\)"
            ):
                query_digit(_settings(url, query_timeout=0.5, query_deadline=0.1), image=digit_png)
        finally:
            thread.join(5)
            for conn in accepted:
                conn.close()


def test_query_to_a_server_that_hangs_up_is_waited_for_then_named(digit_png: Path) -> None:
    with socket.socket() as rude:
        rude.bind(("127.0.0.1", 0))
        rude.listen()
        url = f"http://127.0.0.1:{rude.getsockname()[1]}"

        def hang_up() -> None:
            while True:
                try:
                    connection, _ = rude.accept()
                except OSError:  # the test is over
                    return
                connection.recv(65536)
                connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        with pytest.raises(EndpointError) as raised:
            query_digit(_settings(url, query_wait=0.3), image=digit_png)
    assert "(Remote end closed connection without response) after waiting 0.3 s" in str(
        raised.value
    )


def test_query_to_nothing_listening_names_the_url_and_the_fix(digit_png: Path) -> None:
    with FakeEndpoint((200, "")) as endpoint:
        url = endpoint.url  # the port is free again once the endpoint stops
    with pytest.raises(EndpointError) as raised:
        query_digit(_settings(url, query_deadline=0.3), image=digit_png)
    assert url in str(raised.value)
    assert "inv serve" in str(raised.value)


def test_local_url_with_nothing_listening_fails_at_once_saying_how_to_start_a_server(
    digit_png: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The default: no retries at all on loopback (nothing there starts by itself)."""
    with FakeEndpoint((200, "")) as endpoint:
        url = endpoint.url
    with caplog.at_level(logging.INFO), pytest.raises(EndpointError) as raised:
        query_digit(Settings(query_url=url), image=digit_png)  # HK_QUERY_DEADLINE: 60 s
    message = str(raised.value)
    assert message.startswith(f"no model server answers at {url} (Connection refused). ")
    assert "`inv serve`" in message and "--wait SECONDS" in message
    assert "next try" not in caplog.text


def test_wait_reaches_a_server_that_starts_listening_later(
    digit_png: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeEndpoint((200, "")) as endpoint:
        port, url = endpoint.port, endpoint.url
    started: list[FakeEndpoint] = []

    def start() -> None:
        started.append(FakeEndpoint((200, seldon_answer([GOOD_ROW])), port=port).__enter__())

    later = threading.Timer(0.6, start)
    later.start()
    try:
        with caplog.at_level(logging.INFO):
            result = query_digit(Settings(query_url=url, query_wait=20.0), image=digit_png)
    finally:
        later.join()
        for server in started:
            server.__exit__(None, None, None)
    assert result.prediction == 7
    retries = [r.getMessage() for r in caplog.records if "next try in" in r.getMessage()]
    assert retries, "the query should have retried while nothing listened"
    assert retries[0].startswith(
        f"POST {url}/api/v1.0/predictions failed (Connection refused), attempt 1; next try in "
    )


def test_query_mnist_index_reports_the_true_label(mnist_dir: Path) -> None:
    settings = _settings("http://127.0.0.1:9", mnist_dir=mnist_dir)
    with FakeEndpoint((200, seldon_answer([GOOD_ROW]))) as endpoint:
        result = query_digit(settings.replace(query_url=endpoint.url), index=0)
    assert result.label == int(load_test_images(settings).y[0])
    assert result.index == 0
    sent = np.asarray(json.loads(endpoint.received[0][2])["data"]["ndarray"])
    assert sent.shape == (1, 784)
    assert sent.min() >= 0
    assert sent.max() <= 1


def test_query_index_out_of_range_is_a_clear_error(mnist_dir: Path) -> None:
    with pytest.raises(QueryError, match="out of range"):
        query_digit(_settings("http://127.0.0.1:9", mnist_dir=mnist_dir), index=10_000)


def test_query_negative_index_other_than_minus_one_is_an_error(mnist_dir: Path) -> None:
    """Only -1 means "a random image": -7 is a typo, not a random pick."""
    with pytest.raises(QueryError, match=r"--index -7 is out of range.*-1 for a random one"):
        query_digit(_settings("http://127.0.0.1:9", mnist_dir=mnist_dir), index=-7)


def test_query_with_a_bad_plot_name_fails_before_sending(digit_png: Path) -> None:
    answer = (200, seldon_answer([GOOD_ROW]))
    with FakeEndpoint(answer) as endpoint, pytest.raises(QueryError, match=r"ending in \.png"):
        query_digit(_settings(endpoint.url), image=digit_png, plot="digit.xyz")
    assert endpoint.received == []


def test_query_count_reports_accuracy_through_the_endpoint(mnist_dir: Path) -> None:
    # The fake answers 7 every time: right for exactly the sevens among the first five.
    rows = [GOOD_ROW] * 5
    settings = _settings("http://127.0.0.1:9", mnist_dir=mnist_dir)
    sevens = int((load_test_images(settings).y[:5] == 7).sum())
    with FakeEndpoint((200, seldon_answer(rows))) as endpoint:
        result = query_accuracy(settings.replace(query_url=endpoint.url), count=5)
    assert (result.count, result.correct) == (5, sevens)
    assert len(json.loads(endpoint.received[0][2])["data"]["ndarray"]) == 5


def test_inv_query_json_prints_one_object_last(digit_png: Path) -> None:
    with FakeEndpoint((200, seldon_answer([GOOD_ROW]))) as endpoint:
        completed = run_inv(
            "query",
            "--image",
            str(digit_png),
            "--json",
            env={"HK_QUERY_URL": endpoint.url, "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
    assert completed.returncode == 0, completed.stderr
    last = json.loads(completed.stdout.strip().splitlines()[-1])
    assert last["prediction"] == 7
    assert last["probabilities"] == GOOD_ROW
    assert last["label"] is None
    assert last["sanity"].startswith("ok")


def test_inv_query_with_no_server_exits_1_with_how_to_start_one(digit_png: Path) -> None:
    with FakeEndpoint((200, "")) as endpoint:
        url = endpoint.url
    completed = run_inv(
        "query", "--image", str(digit_png), "--url", url, env={"PATH": "/usr/bin:/bin"}, timeout=60
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"error: no model server answers at {url}")
    assert "inv serve" in completed.stderr
    assert "Traceback" not in completed.stderr and "next try" not in completed.stderr


def test_inv_query_exits_non_zero_on_a_failed_sanity_check(digit_png: Path) -> None:
    with FakeEndpoint((200, seldon_answer([GOOD_ROW[:9]]))) as endpoint:
        completed = run_inv(
            "query",
            "--image",
            str(digit_png),
            env={"HK_QUERY_URL": endpoint.url, "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
    assert completed.returncode == 1
    assert "sanity check failed" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["seldon", "v2"])
def test_a_book_preset_server_passes_the_sanity_check_for_every_test_image(
    preset_model: Callable[[str], Path], full_mnist_dir: Path, protocol: str
) -> None:
    """The book forest once answered 1.0000004 for a fifth of the images, and `inv query
    --index 0` then failed its own sanity check."""
    from hello_kubeflow.serving.server import running_server

    with running_server(Settings(serve_port=0), preset_model("book")) as server:
        settings = _settings(server.url, mnist_dir=full_mnist_dir, query_timeout=30.0)
        first = query_digit(settings, index=0, protocol=protocol)
        every = query_accuracy(settings, count=10_000, protocol=protocol)
    assert first.sanity.startswith("ok") and first.prediction == first.label == 7
    assert every.count == 10_000 and every.sanity.startswith("ok")
    assert every.accuracy > 0.95


@pytest.mark.parametrize(
    ("settings", "url", "seconds"),
    [
        (Settings(), "http://127.0.0.1:9000/api/v1.0/predictions", 0.0),
        (Settings(), "http://localhost:9000/x", 0.0),
        (Settings(query_deadline=42.0), "https://gateway.example/x", 42.0),
        (Settings(mode="cluster", query_deadline=42.0), "http://127.0.0.1:31000/x", 42.0),
        (Settings(query_wait=7.0), "http://127.0.0.1:9000/x", 7.0),
    ],
)
def test_how_long_a_server_that_is_not_listening_is_waited_for(
    settings: Settings, url: str, seconds: float
) -> None:
    """Local mode, loopback: not at all; a gateway or port-forward: the deadline; --wait wins."""
    wait = connect_wait(
        url, wait=settings.query_wait, mode=settings.mode, deadline=settings.query_deadline
    )
    assert wait == seconds


def test_a_host_name_that_does_not_resolve_fails_at_once_not_retried(
    digit_png: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As for the MNIST mirrors: waiting does not make a name resolve (`.invalid` never does)."""
    url = "http://example.invalid:9000"
    with caplog.at_level(logging.INFO), pytest.raises(EndpointError) as raised:
        query_digit(_settings(url, query_wait=20.0, query_deadline=20.0), image=digit_png)
    assert str(raised.value).startswith(
        f"cannot reach the model server at {url}/api/v1.0/predictions: the host name does not "
        "resolve (not retried"
    )
    assert "next try" not in caplog.text
