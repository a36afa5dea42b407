"""`inv demo`: train, serve in the background, query, stop: the walkthrough in one command."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_kubeflow.errors import EndpointError, HelloKubeflowError, QueryError
from hello_kubeflow.pipeline.local import RunOptions, RunSummary, run_local
from hello_kubeflow.pipeline.steps import read_test_images
from hello_kubeflow.query.client import (
    AccuracyResult,
    QueryResult,
    check_protocol,
    query_accuracy,
    query_digit,
)
from hello_kubeflow.query.digits import check_plot_path
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSummary:
    """What the demo did: the training run, the query, and the optional accuracy check."""

    run: RunSummary
    query: QueryResult
    accuracy: AccuracyResult | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: `run`, `query` (prediction, probabilities, label, sanity) and `accuracy`."""
        return {
            "run": self.run.as_dict(),
            "query": self.query.as_dict(),
            "accuracy": self.accuracy.as_dict() if self.accuracy else None,
        }

    def describe(self) -> str:
        parts = [self.run.describe(), "", self.query.describe()]
        if self.accuracy is not None:
            parts += ["", self.accuracy.describe()]
        parts += ["", "the model server has been stopped"]
        return "\n".join(parts)


def run_demo(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    runner: str = "subprocess",
    protocol: str = "seldon",
    count: int = 0,
    plot: str = "",
) -> DemoSummary:
    """Train the model, serve it on a free loopback port, query it, stop the server.

    The server runs in a thread of this process: nothing is left running afterwards.

    Args:
        count: also send this many test images and report the accuracy (0: skip).
        plot: write the query's digit-and-probabilities plot to this PNG.

    Raises:
        QueryError: a bad protocol, count or plot name (before anything is trained).
        HelloKubeflowError: from training, serving or querying, noted with what the demo
            was doing (never the advice for a server the user starts).
    """
    check_protocol(protocol)
    if count < 0:
        raise QueryError(f"--count {count}: give a number of test images to send, or 0")
    if plot:
        check_plot_path(plot)
    with _doing("training the model"):
        run = run_local(settings, options, runner=runner)
        # The run's own test set: no second look for MNIST (nor a second offline verdict).
        test_images = read_test_images(run.dataset_path)
    # A free port, not settings.serve_port: an `inv serve` already running there
    # would otherwise answer instead of the model just trained.
    demo_settings = settings.replace(serve_host="127.0.0.1", serve_port=0)
    with (
        _doing(f"serving the model it trained ({run.model_path})"),
        running_server(demo_settings, Path(run.model_path)) as server,
    ):
        log.info("serving the new model at %s", server.url)
        query_settings = settings.replace(query_url=server.url)
        with _doing(f"querying the model server it started at {server.url}", own=server.url):
            result = query_digit(
                query_settings, protocol=protocol, plot=plot, test_images=test_images
            )
        accuracy = None
        if count:
            with _doing(f"sending {count:,} test images to {server.url}", own=server.url):
                accuracy = query_accuracy(
                    query_settings, count=count, protocol=protocol, test_images=test_images
                )
    log.info("model server stopped")
    return DemoSummary(run, result, accuracy)


@contextmanager
def _doing(what: str, own: str = "") -> Iterator[None]:
    """Note on an error from the block what the demo was doing (`inv demo, training the model`);
    its own server at `own` not answering is said so, not how to start a server."""
    try:
        yield
    except HelloKubeflowError as exc:
        if own and isinstance(exc, EndpointError) and exc.unreachable:
            exc = EndpointError(
                f"the model server the demo started at {own} did not answer ({exc.unreachable}); "
                "it has been stopped: see its messages above",
                unreachable=exc.unreachable,
            )
        if not getattr(exc, "__notes__", None):  # the innermost stage says it
            exc.add_note(f"inv demo, {what}")
        raise exc from None
