"""Query the model server and sanity-check the answer: ten probabilities naming a digit.

One MNIST image is sent without numpy (`one_image` reads it from the IDX files).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
import requests
from tenacity import RetryCallState, Retrying, retry_if_exception

from hello_kubeflow.data.one_image import RANDOM_INDEX, check_index, load_one_test_image
from hello_kubeflow.errors import EndpointError, QueryError
from hello_kubeflow.http_client import send, status_error
from hello_kubeflow.query.answers import Pixels, check_answer, seldon_payload, v2_payload
from hello_kubeflow.query.likeness import mnist_likeness
from hello_kubeflow.retry import describe_failure, is_name_not_resolved, jittered_backoff, log_retry
from hello_kubeflow.settings import Settings

if TYPE_CHECKING:
    from hello_kubeflow.data.mnist import MnistTestImages

log = logging.getLogger(__name__)

PROTOCOLS = ("seldon", "v2")
SELDON_PATH = "/api/v1.0/predictions"
BATCH_SIZE = 500  # images per request for --count (~2 MB of JSON, under the body limit)
FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_WAIT_SECONDS = 5.0
LOCAL_HOSTS = frozenset({"localhost", "::1", "0.0.0.0"})


@dataclass(frozen=True)
class QueryResult:
    """One image sent, the answer, its sanity verdict (its form), and whether the image looks
    like a digit (`input_note`: noise gets an answer of the right form that may mean nothing).
    """

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
    input_like_mnist: bool = True
    input_note: str = ""
    correct: bool | None = None  # the prediction is the true label (None: no label known)

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able values."""
        return asdict(self)

    def describe(self) -> str:
        """The result as a person reads it."""
        top = ", ".join(f"{digit}: {p:.3f}" for digit, p in self.top3)
        verdict = f" (WRONG: the true label is {self.label})" if self.correct is False else ""
        verdict = " (right)" if self.correct else verdict
        lines = [
            f"image:      {self.source}",
            f"true label: {self.label if self.label is not None else 'unknown (a drawn digit)'}",
            f"prediction: {self.prediction}{verdict}",
            f"top 3:      {top}",
            f"sanity:     {self.sanity}",
            f"input:      {self.input_note}",
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
        return (
            f"accuracy through the endpoint: {self.accuracy:.2%} "
            f"({self.correct:,} of {self.count:,} MNIST test images)\n"
            f"sanity:   {self.sanity}\n"
            f"endpoint: {self.url} ({self.protocol}), {self.seconds:.1f} s"
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
    url: str = "",
) -> QueryResult:
    """Send one digit to the server and sanity-check the answer.

    Args:
        settings: the server URL, model name, timeouts, MNIST.
        index: an MNIST test image index (-1: at random); `image` a drawn digit's PNG instead.
        protocol: `seldon` or `v2`; `headers` extra ones (e.g. a gateway's credentials).
        plot: a PNG to write showing the digit beside the probabilities.
        test_images: the test set to pick from (default: `mnist.load_test_images`).
        url: the prediction URL (default: `protocol`'s under `settings.server_url`).

    Raises:
        QueryError: bad options (index out of range, unreadable PNG).
        EndpointError: the server cannot be reached, or refused the request.
        SanityCheckError: the answer is not ten class probabilities naming a digit.
    """
    check_protocol(protocol)
    if plot:
        from hello_kubeflow.query.digits import check_plot_path  # numpy, PIL: --plot only

        check_plot_path(plot)  # a bad name fails before the query, not after it
    label: int | None = None
    chosen: int | None = None
    if image:
        if index >= 0:
            raise QueryError("give --index or --image, not both")
        from hello_kubeflow.query.digits import load_digit_png  # numpy, PIL: --image only

        pixels: Any = load_digit_png(image)
        batch: Pixels = pixels[None, :]
        source = f"{image} (drawn digit, made MNIST-like)"
    else:
        pixels, label, chosen = _mnist_test_image(settings, index, test_images)
        batch, source = [pixels], f"MNIST test image #{chosen}"
    url, post = _sender(settings, url, protocol, headers)
    body = post(batch)
    [answer] = check_answer(body, protocol, rows=1, url=url)
    likeness = mnist_likeness(pixels, answer.probabilities[answer.digit])
    plotted = None
    if plot:
        from hello_kubeflow.query.digits import save_prediction_plot  # matplotlib: --plot only

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
        input_like_mnist=likeness.like_mnist,
        input_note=likeness.note,
        correct=None if label is None else answer.digit == label,
    )


def query_accuracy(
    settings: Settings,
    *,
    count: int,
    start: int = 0,
    protocol: str = "seldon",
    headers: Mapping[str, str] | None = None,
    test_images: MnistTestImages | None = None,
    url: str = "",
) -> AccuracyResult:
    """Send `count` MNIST test images in batches, each answer sanity-checked; the accuracy.

    Raises:
        QueryError, EndpointError, SanityCheckError: as for `query_digit`.
    """
    from hello_kubeflow.data.mnist import load_test_images, scale_pixels  # numpy: --count only

    check_protocol(protocol)
    data = test_images or load_test_images(settings)
    total = len(data.y)
    start = max(start, 0)
    if count < 1 or start + count > total:
        raise QueryError(
            f"--count {count} from index {start} does not fit the {total:,} test images "
            f"({data.source}): use 1 to {total - start:,}"
        )
    url, post = _sender(settings, url, protocol, headers)
    correct = 0
    confused: Counter[str] = Counter()
    started = time.monotonic()
    for first in range(start, start + count, BATCH_SIZE):
        last = min(first + BATCH_SIZE, start + count)
        batch = scale_pixels(data.x[first:last])
        body = post(batch)
        answers = check_answer(body, protocol, rows=len(batch), url=url)
        for answer, label in zip(answers, data.y[first:last], strict=True):
            if answer.digit == int(label):
                correct += 1
            else:
                confused[f"{int(label)}->{answer.digit}"] += 1
        log.info("sent %d/%d images", last - start, count)
    return AccuracyResult(
        count=count,
        correct=correct,
        accuracy=correct / count,
        seconds=time.monotonic() - started,
        sanity=f"ok: all {count:,} answers are ten probabilities naming a digit",
        url=url,
        protocol=protocol,
        confused=dict(confused.most_common(10)),
    )


def endpoint_url(server_url: str, model_name: str, protocol: str) -> str:
    """The prediction URL under `server_url` for `protocol`."""
    base = server_url.rstrip("/")
    if protocol == "v2":
        return f"{base}/v2/models/{model_name}/infer"
    return base + SELDON_PATH


def post_images(
    url: str,
    pixels: Pixels,
    protocol: str,
    *,
    timeout: float,
    deadline: float,
    wait: float,
    headers: Mapping[str, str] | None = None,
    local_server: str = "",
) -> Any:
    """POST a batch of images; return the decoded JSON answer (or its text, if not JSON).

    Args:
        url: the prediction URL; `pixels` and `protocol` the images and how they are sent.
        timeout: seconds for each attempt (HK_QUERY_TIMEOUT); `headers` extra ones.
        deadline: seconds to retry 502/503/504 (HK_QUERY_DEADLINE); `wait` to retry a
            connection that is not accepted (`connect_wait`).
        local_server: the local server's URL, named with how to start one ("": not local).

    Raises:
        EndpointError: unreachable past the deadline, a timeout, or a 4xx/5xx answer
            (the server's own message quoted).
    """
    payload = seldon_payload(pixels) if protocol == "seldon" else v2_payload(pixels, "input")
    sent_headers = {"Content-Type": "application/json", **(headers or {})}

    def give_up(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and is_name_not_resolved(exc):
            return True  # as for the MNIST mirrors: a name that does not resolve will not soon
        limit = wait if _not_connected(exc) else deadline
        return (state.seconds_since_start or 0.0) >= limit

    retrying = Retrying(
        retry=retry_if_exception(
            lambda exc: _not_connected(exc) or isinstance(exc, requests.HTTPError)
        ),
        wait=jittered_backoff(FIRST_RETRY_SECONDS, MAX_RETRY_WAIT_SECONDS),
        stop=give_up,
        before_sleep=log_retry(log, f"POST {url}", level=logging.INFO),
        reraise=True,
    )
    try:
        response = retrying(_post, url, payload, sent_headers, timeout)
    except requests.Timeout:
        raise EndpointError(
            f"{url} did not answer within {timeout:g} s (HK_QUERY_TIMEOUT): "
            "the server is overloaded or stuck; raise HK_QUERY_TIMEOUT or check its log"
        ) from None
    except requests.HTTPError as exc:
        raise EndpointError(
            f"{url} still answered HTTP {exc.response.status_code} after {deadline:g} s "
            f"({_server_message(exc.response)}): the model is not ready; check the server's log"
        ) from None
    except requests.RequestException as exc:
        if not _not_connected(exc):
            raise EndpointError(f"the request to {url} failed: {describe_failure(exc)}") from None
        raise EndpointError(
            _unreachable_message(url, wait, exc, local_server),
            unreachable=describe_failure(exc),
        ) from None
    if response.status_code >= 400:
        raise EndpointError(
            f"{url} refused the request with HTTP {response.status_code}: "
            f"{_server_message(response)}"
        )
    try:
        return orjson.loads(response.content)
    except ValueError:
        return response.text


_STATUSES = frozenset({502, 503, 504})  # a model still loading, or its gateway


def _not_connected(exc: BaseException | None) -> bool:
    """The server did not accept the connection, or dropped it before answering."""
    return isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout)


def _post(url: str, payload: bytes, headers: dict[str, str], timeout: float) -> requests.Response:
    response = send("POST", url, timeout=timeout, data=payload, headers=headers)
    if response.status_code in _STATUSES:
        raise status_error(response)
    return response


def _server_message(response: requests.Response) -> str:
    """The server's own words: Seldon `status.info`, V2 `error`, else the start of the body."""
    try:
        body = orjson.loads(response.content)
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
    """True for a loopback URL, where a server that is not listening will not start by itself."""
    host = urlsplit(url).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("127.")


def connect_wait(url: str, *, wait: float | None, mode: str, deadline: float) -> float:
    """Seconds to wait for a server not accepting connections at `url`: `wait` (`--wait`) if
    set, else 0 on a local URL in local mode, else `deadline` (a gateway may be coming up)."""
    if wait is not None:
        return wait
    return 0.0 if is_local_url(url) and mode == "local" else deadline


def _sender(
    settings: Settings, url: str, protocol: str, headers: Mapping[str, str] | None
) -> tuple[str, Callable[[Pixels], Any]]:
    """The URL (default: under `settings.server_url`) and `post_images` to it with the
    settings' timeouts, for one batch after another."""
    url = url or endpoint_url(settings.server_url, settings.model_name, protocol)
    local = settings.mode == "local" and is_local_url(url)
    return url, functools.partial(
        post_images,
        url,
        protocol=protocol,
        timeout=settings.query_timeout,
        deadline=settings.query_deadline,
        wait=connect_wait(
            url, wait=settings.query_wait, mode=settings.mode, deadline=settings.query_deadline
        ),
        headers=headers,
        local_server=settings.server_url if local else "",
    )


def _unreachable_message(url: str, wait: float, exc: BaseException, local_server: str) -> str:
    reason = describe_failure(exc)
    if is_name_not_resolved(exc):
        return (
            f"cannot reach the model server at {url}: {reason} (not retried: waiting "
            "will not make it resolve); check the URL (--url, HK_QUERY_URL)"
        )
    if local_server:
        waited = f" after waiting {wait:g} s" if wait else ""
        return (
            f"no model server answers at {local_server} ({reason}){waited}. Start one "
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
) -> tuple[list[float], int, int]:
    """One scaled MNIST test image, its label and its index."""
    if test_images is None:
        one = load_one_test_image(settings, index)
        return one.pixels, one.label, one.index
    from hello_kubeflow.data.mnist import scale_pixels  # numpy: a changed test file only

    index = check_index(index, len(test_images.y), test_images.source)
    pixels = [float(p) for p in scale_pixels(test_images.x[index])]
    return pixels, int(test_images.y[index]), index
