"""Query the model server and sanity-check the answer: ten probabilities naming a digit.

`query_digit` sends one image (an MNIST test image by index or at random, or a
PNG a person drew) and `query_accuracy` sends N test images in batches; both in
the Seldon format or the Open Inference Protocol (V2). Requests have a timeout;
502/503/504 (a model still loading) are retried until `settings.query_deadline`;
a 4xx is never retried and its message is shown. A server that does not accept
the connection is waited for `settings.query_wait` seconds (`--wait`); by default
not at all on a local URL (nothing listening there will not start by itself),
`query_deadline` elsewhere (a gateway or a port-forward coming up).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from hello_kubeflow.answers import Prediction, check_answer, seldon_payload, v2_payload
from hello_kubeflow.backoff import describe_failure, jittered_backoff, log_retry
from hello_kubeflow.errors import EndpointError, QueryError
from hello_kubeflow.settings import Settings

if TYPE_CHECKING:
    from hello_kubeflow.mnist import MnistTestImages

logger = logging.getLogger(__name__)

PROTOCOLS = ("seldon", "v2")
SELDON_PATH = "/api/v1.0/predictions"
RETRY_STATUSES = frozenset({502, 503, 504})
BATCH_SIZE = 500  # images per request for --count (~2 MB of JSON, under the body limit)
FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_WAIT_SECONDS = 5.0
RANDOM_INDEX = -1  # `--index -1`: a random MNIST test image
LOCAL_HOSTS = frozenset({"localhost", "::1", "0.0.0.0"})


@dataclass(frozen=True)
class QueryResult:
    """One image sent, the answer, and the sanity verdict."""

    source: str
    label: int | None
    prediction: int
    probabilities: list[float]
    top3: list[tuple[int, float]]
    sanity: str
    url: str
    protocol: str
    index: int | None = None
    plot: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able values: `prediction`, `probabilities`, `label`, `sanity`, ..."""
        return asdict(self)

    def describe(self) -> str:
        """The result as a person reads it."""
        top = ", ".join(f"{digit}: {p:.3f}" for digit, p in self.top3)
        lines = [
            f"image:      {self.source}",
            f"true label: {self.label if self.label is not None else 'unknown (a drawn digit)'}",
            f"prediction: {self.prediction}",
            f"top 3:      {top}",
            f"sanity:     {self.sanity}",
            f"endpoint:   {self.url} ({self.protocol})",
        ]
        if self.plot:
            lines.append(f"plot:       {self.plot}")
        return "\n".join(lines)


@dataclass(frozen=True)
class AccuracyResult:
    """N test images sent in batches, and how many the endpoint got right."""

    count: int
    correct: int
    accuracy: float
    seconds: float
    sanity: str
    url: str
    protocol: str
    confused: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able values."""
        return asdict(self)

    def describe(self) -> str:
        """The result as a person reads it."""
        return "\n".join(
            [
                f"accuracy through the endpoint: {self.accuracy:.2%} "
                f"({self.correct:,} of {self.count:,} MNIST test images)",
                f"sanity:   {self.sanity}",
                f"endpoint: {self.url} ({self.protocol}), {self.seconds:.1f} s",
            ]
        )


def query_digit(
    settings: Settings,
    *,
    index: int = RANDOM_INDEX,
    image: str | Path = "",
    protocol: str = "seldon",
    plot: str | Path = "",
    headers: Mapping[str, str] | None = None,
    test_images: MnistTestImages | None = None,
) -> QueryResult:
    """Send one digit to the server and sanity-check the answer.

    Args:
        settings: the server URL (`settings.server_url`), model name, timeouts, MNIST.
        test_images: the test set to pick from (default: `mnist.load_test_images`).
        index: an MNIST test image index; -1 picks one at random.
        image: a PNG of a drawn digit to send instead of an MNIST image.
        protocol: `seldon` or `v2`.
        plot: a PNG to write showing the digit beside the probabilities.
        headers: extra HTTP headers (e.g. a gateway's credentials).

    Raises:
        QueryError: bad options (index out of range, unreadable PNG).
        EndpointError: the server cannot be reached, or refused the request.
        SanityCheckError: the answer is not ten class probabilities naming a digit.
    """
    check_protocol(protocol)
    if plot:
        from hello_kubeflow.digits import check_plot_path

        check_plot_path(plot)  # a bad name fails before the query, not after it
    label: int | None = None
    chosen: int | None = None
    if image:
        if index >= 0:
            raise QueryError("give --index or --image, not both")
        from hello_kubeflow.digits import load_digit_png

        pixels = load_digit_png(image)
        source = f"{image} (drawn digit, made MNIST-like)"
    else:
        pixels, label, chosen, source = _mnist_test_image(settings, index, test_images)
    url = endpoint_url(settings, protocol)
    with requests.Session() as session:
        body = post_images(session, settings, url, pixels[np.newaxis, :], protocol, headers)
    [answer] = check_answer(body, protocol, rows=1, url=url)
    plotted = None
    if plot:
        from hello_kubeflow.digits import save_prediction_plot

        plotted = str(
            save_prediction_plot(
                plot, pixels, answer.probabilities, title=source.split(" (")[0], label=label
            )
        )
    return QueryResult(
        source=source,
        label=label,
        prediction=answer.digit,
        probabilities=list(answer.probabilities),
        top3=answer.top(3),
        sanity=answer.verdict,
        url=url,
        protocol=protocol,
        index=chosen,
        plot=plotted,
    )


def query_accuracy(
    settings: Settings,
    *,
    count: int,
    start: int = 0,
    protocol: str = "seldon",
    headers: Mapping[str, str] | None = None,
    test_images: MnistTestImages | None = None,
) -> AccuracyResult:
    """Send `count` MNIST test images (in batches) and measure accuracy through the endpoint.

    Every answer goes through the same sanity check as a single query.

    Raises:
        QueryError, EndpointError, SanityCheckError: as for `query_digit`.
    """
    from hello_kubeflow.mnist import load_test_images, scale_pixels

    check_protocol(protocol)
    data = test_images or load_test_images(settings)
    total = len(data.y)
    start = max(start, 0)
    if count < 1 or start + count > total:
        raise QueryError(
            f"--count {count} from index {start} does not fit the {total:,} test images "
            f"({data.source}): use 1 to {total - start:,}"
        )
    url = endpoint_url(settings, protocol)
    correct = 0
    confused: dict[str, int] = {}
    started = time.monotonic()
    with requests.Session() as session:
        for first in range(start, start + count, BATCH_SIZE):
            last = min(first + BATCH_SIZE, start + count)
            batch = scale_pixels(data.x[first:last])
            body = post_images(session, settings, url, batch, protocol, headers)
            answers = check_answer(body, protocol, rows=len(batch), url=url)
            for answer, label in zip(answers, data.y[first:last], strict=True):
                if answer.digit == int(label):
                    correct += 1
                else:
                    key = f"{int(label)}->{answer.digit}"
                    confused[key] = confused.get(key, 0) + 1
            logger.info("sent %d/%d images", last - start, count)
    seconds = time.monotonic() - started
    return AccuracyResult(
        count=count,
        correct=correct,
        accuracy=correct / count,
        seconds=seconds,
        sanity=f"ok: all {count:,} answers are ten probabilities naming a digit",
        url=url,
        protocol=protocol,
        confused=dict(sorted(confused.items(), key=lambda kv: -kv[1])[:10]),
    )


def endpoint_url(settings: Settings, protocol: str) -> str:
    """The prediction URL under `settings.server_url` for `protocol`."""
    base = settings.server_url.rstrip("/")
    if protocol == "v2":
        return f"{base}/v2/models/{settings.model_name}/infer"
    return base + SELDON_PATH


def post_images(
    session: requests.Session,
    settings: Settings,
    url: str,
    pixels: npt.NDArray[np.float32],
    protocol: str,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """POST a batch of images; return the decoded JSON answer (or its text, if not JSON).

    Retries 502/503/504 with backoff until `settings.query_deadline`, and a
    connection that is not accepted for `connect_wait(settings, url)` seconds; each
    attempt times out after `settings.query_timeout`. Each retry is one log line.

    Raises:
        EndpointError: unreachable past the deadline, a timeout, or a 4xx/5xx answer
            (the server's own message quoted).
    """
    payload = seldon_payload(pixels) if protocol == "seldon" else v2_payload(pixels, "input")
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    wait = connect_wait(settings, url)

    def give_up(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        limit = wait if isinstance(exc, requests.ConnectionError) else settings.query_deadline
        return (state.seconds_since_start or 0.0) >= limit

    retrying = Retrying(
        retry=retry_if_exception_type((requests.ConnectionError, _TransientAnswer)),
        wait=jittered_backoff(FIRST_RETRY_SECONDS, MAX_RETRY_WAIT_SECONDS),
        stop=give_up,
        before_sleep=log_retry(logger, f"POST {url}", level=logging.INFO),
        reraise=True,
    )
    try:
        response = retrying(_post, session, url, payload, sent_headers, settings.query_timeout)
    except requests.ConnectionError as exc:
        raise EndpointError(_unreachable_message(settings, url, wait, exc)) from None
    except _TransientAnswer as exc:
        raise EndpointError(
            f"{url} still answered HTTP {exc.status} after {settings.query_deadline:g} s "
            f"({_server_message(exc.response)}): the model is not ready; check the server's log"
        ) from None
    except requests.Timeout:
        raise EndpointError(
            f"{url} did not answer within {settings.query_timeout:g} s (HK_QUERY_TIMEOUT): "
            "the server is overloaded or stuck; raise HK_QUERY_TIMEOUT or check its log"
        ) from None
    except requests.RequestException as exc:
        raise EndpointError(f"the request to {url} failed: {exc}") from None
    if response.status_code >= 400:
        raise EndpointError(
            f"{url} refused the request with HTTP {response.status_code}: "
            f"{_server_message(response)}"
        )
    try:
        return response.json()
    except ValueError:
        return response.text


class _TransientAnswer(Exception):
    """A 502/503/504 answer: the server (or its gateway) may be ready soon."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.status = response.status_code
        self.response = response


def _post(
    session: requests.Session, url: str, payload: bytes, headers: dict[str, str], timeout: float
) -> requests.Response:
    response = session.post(url, data=payload, headers=headers, timeout=timeout)
    if response.status_code in RETRY_STATUSES:
        raise _TransientAnswer(response)
    return response


def _server_message(response: requests.Response) -> str:
    """The server's own words: Seldon `status.info`, V2 `error`, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason
    if isinstance(body, dict):
        status = body.get("status")
        if isinstance(status, dict) and status.get("info"):
            return str(status["info"])
        if body.get("error"):
            return str(body["error"])
    return str(body)[:300]


def is_local_url(url: str) -> bool:
    """True for a URL on this machine (loopback), where a server that is not
    listening will not start by itself."""
    host = urlsplit(url).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("127.")


def connect_wait(settings: Settings, url: str) -> float:
    """Seconds to wait for a server that does not accept connections at `url`.

    `settings.query_wait` (`--wait`, `HK_QUERY_WAIT`) when set; else 0 on a local
    URL in local mode and `settings.query_deadline` anywhere else (a gateway, or
    cluster mode's port-forward, may still be coming up).
    """
    if settings.query_wait is not None:
        return settings.query_wait
    if is_local_url(url) and settings.mode == "local":
        return 0.0
    return settings.query_deadline


def _unreachable_message(
    settings: Settings, url: str, wait: float, exc: requests.ConnectionError
) -> str:
    reason = describe_failure(exc)
    if is_local_url(url) and settings.mode == "local":
        waited = f" after waiting {wait:g} s" if wait else ""
        return (
            f"no model server answers at {settings.server_url} ({reason}){waited}. Start one "
            "in another terminal with `inv serve` (`--port N` for another port), or run "
            "`inv demo`; if it is starting, add `--wait SECONDS`; or point --url "
            "(HK_QUERY_URL) at a running server"
        )
    return (
        f"cannot reach the model server at {url} after {wait:g} s ({reason}): check that it "
        "is running and the URL (--url, HK_QUERY_URL), or wait longer with --wait SECONDS"
    )


def check_protocol(protocol: str) -> None:
    """Refuse a protocol other than `seldon` or `v2`.

    Raises:
        QueryError: naming the protocols there are.
    """
    if protocol not in PROTOCOLS:
        raise QueryError(f"--protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")


def _mnist_test_image(
    settings: Settings, index: int, test_images: MnistTestImages | None
) -> tuple[npt.NDArray[np.float32], int, int, str]:
    """One scaled MNIST test image, its label, its index and a description."""
    from hello_kubeflow.mnist import load_test_images, scale_pixels

    data = test_images or load_test_images(settings)
    total = len(data.y)
    if index == RANDOM_INDEX:
        index = random.randrange(total)
    elif not 0 <= index < total:
        raise QueryError(
            f"--index {index} is out of range: the test set ({data.source}) has {total:,} "
            f"images, 0 to {total - 1:,} (or {RANDOM_INDEX} for a random one)"
        )
    pixels = scale_pixels(data.x[index])
    return pixels, int(data.y[index]), index, f"MNIST test image #{index}"


__all__ = [
    "PROTOCOLS",
    "AccuracyResult",
    "Prediction",
    "QueryResult",
    "check_protocol",
    "endpoint_url",
    "post_images",
    "query_accuracy",
    "query_digit",
]
