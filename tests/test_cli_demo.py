"""inv demo: train, serve, query, stop; nothing is left running, even when a step fails."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from inv_support import run_inv
from serving_support import call, free_port, make_tiny_model

from hello_kubeflow.cli import demo
from hello_kubeflow.cli.demo import DemoSummary, run_demo
from hello_kubeflow.data.mnist import load_test_images
from hello_kubeflow.errors import EndpointError, QueryError
from hello_kubeflow.pipeline.local import RunOptions, RunSummary
from hello_kubeflow.query.client import query_digit
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import Settings

SMALL = RunOptions(n_estimators=5, train_limit=1_000, test_limit=200)


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "model-server"]


@pytest.mark.slow
def test_inv_demo_trains_serves_queries_and_stops(mnist_dir: Path, tmp_path: Path) -> None:
    completed = run_inv(
        "demo",
        "--trees", "5", "--train-limit", "1000", "--test-limit", "200",
        "--count", "200", "--plot", str(tmp_path / "demo.png"), "--json",
        env={
            "PATH": os.environ["PATH"],
            "MNIST_DIR": str(mnist_dir),
            "HK_OUTPUT_DIR": str(tmp_path / "outputs"),
        },
        timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    query = summary["query"]
    assert query["sanity"].startswith("ok")
    assert 0 <= query["prediction"] <= 9
    assert len(query["probabilities"]) == 10
    assert summary["accuracy"]["count"] == 200
    assert (tmp_path / "demo.png").is_file()
    with pytest.raises(OSError):  # the demo's server is gone
        call(query["url"].rsplit("/api/", 1)[0] + "/health/ping")


@pytest.mark.slow
def test_inv_demo_offline_decides_once_and_says_it_in_one_line(tmp_path: Path) -> None:
    """No MNIST and no DNS: one look for the mirrors, one line, the subset; no second look."""
    completed = run_inv(
        "demo",
        "--trees",
        "3",
        "--json",
        env={
            "PATH": os.environ["PATH"],
            "HK_MNIST_MIRRORS": "http://mnist-a.invalid/,http://mnist-b.invalid/",
            "HK_CACHE_DIR": str(tmp_path / "cache"),
            "HK_OUTPUT_DIR": str(tmp_path / "outputs"),
        },
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["run"]["data_is_subset"] is True
    assert summary["query"]["sanity"].startswith("ok")
    offline = [line for line in completed.stderr.splitlines() if "offline: no MNIST" in line]
    assert len(offline) == 1
    assert "mnist-a.invalid: cannot connect: the host name does not resolve" in offline[0]
    log = Path(summary["run"]["log_path"]).read_text()
    assert log.count("downloading http://mnist-a.invalid/") == 1
    assert log.count("downloading http://mnist-b.invalid/") == 1
    assert "next try" not in completed.stderr + log


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"protocol": "grpc"}, "--protocol 'grpc'"),
        ({"count": -5}, "--count -5"),
        ({"plot": "digit.xyz"}, "--plot digit.xyz"),
    ],
)
def test_demo_refuses_bad_query_options_before_training(
    options: dict[str, object], problem: str, tmp_path: Path
) -> None:
    """A typo in the query's options costs nothing: no training run first."""
    settings = Settings(output_dir=tmp_path / "outputs")
    with pytest.raises(QueryError, match=re.escape(problem)):
        run_demo(settings, SMALL, **options)  # type: ignore[arg-type]
    assert not (tmp_path / "outputs").exists()


def test_inv_demo_refuses_a_negative_tree_count_before_training(tmp_path: Path) -> None:
    completed = run_inv(
        "demo",
        "--trees",
        "-3",
        env={"PATH": os.environ["PATH"], "HK_OUTPUT_DIR": str(tmp_path / "outputs")},
    )
    assert completed.returncode == 1
    assert "--trees=-3: expected a whole number >= 1" in completed.stderr
    assert not (tmp_path / "outputs").exists()  # nothing was trained


@pytest.mark.slow
def test_demo_stops_its_server_when_the_query_fails(mnist_dir: Path, tmp_path: Path) -> None:
    settings = Settings(mnist_dir=mnist_dir, output_dir=tmp_path / "outputs")
    with pytest.raises(QueryError, match="--count"):
        run_demo(settings, SMALL, count=10**9)  # fails after the server has started
    assert _server_threads() == []


@pytest.mark.slow
def test_a_query_failing_inside_the_demo_says_what_the_demo_was_doing(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "start one with `inv serve` ... or run `inv demo`": the demo's own server failed."""
    gone = f"http://127.0.0.1:{free_port()}"  # the server the demo "started", already gone

    @contextmanager
    def server_gone_at_once(settings: Settings, model_dir: Path) -> Iterator[SimpleNamespace]:
        yield SimpleNamespace(url=gone)

    monkeypatch.setattr(demo, "running_server", server_gone_at_once)
    settings = Settings(mnist_dir=mnist_dir, output_dir=tmp_path / "outputs")
    with pytest.raises(EndpointError) as raised:
        run_demo(settings, SMALL)
    assert str(raised.value).startswith(
        f"the model server the demo started at {gone} did not answer (Connection refused)"
    )
    assert "inv serve" not in str(raised.value)
    assert raised.value.__notes__ == [f"inv demo, querying the model server it started at {gone}"]


def test_the_demo_marks_a_wrong_prediction_as_wrong(mnist_dir: Path, tmp_path: Path) -> None:
    """A tiny forest errs on some test digits: that query's line says WRONG and the label."""
    model = make_tiny_model(mnist_dir, tmp_path / "model")
    test_images = load_test_images(Settings(mnist_dir=mnist_dir))
    run = RunSummary(
        accuracy=0.8, model_path=str(model), metrics_path="e.json", confusion_png="c.png",
        seconds=1.0, preset="default", n_estimators=8, train_size=1000, test_size=1000,
        runner="subprocess", data_source="small MNIST",
    )  # fmt: skip
    results = []
    with running_server(Settings(serve_port=0), model) as server:
        settings = Settings(query_url=server.url, query_deadline=10.0)
        for index in range(100):
            results.append(query_digit(settings, index=index, test_images=test_images))
            if {r.correct for r in results} == {True, False}:
                break
    wrong = next(r for r in results if r.prediction != r.label)
    right = next(r for r in results if r.prediction == r.label)

    shown = DemoSummary(run, wrong, None).describe()
    assert f"prediction: {wrong.prediction} (WRONG: the true label is {wrong.label})" in shown
    assert DemoSummary(run, wrong, None).as_dict()["query"]["correct"] is False
    assert f"prediction: {right.prediction} (right)" in DemoSummary(run, right, None).describe()
