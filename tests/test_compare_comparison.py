"""`inv compare`: models side by side, trained or reused, in a table, a chart and JSON."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from inv_support import run_inv
from PIL import Image
from serving_support import make_tiny_model, mnist_test_pixels
from small_mnist import idx_bytes

from hello_kubeflow.cli.compare import parse_models
from hello_kubeflow.compare import comparison
from hello_kubeflow.compare.comparison import (
    Comparison,
    Contender,
    compare_models,
    served_latency_ms,
)
from hello_kubeflow.data.idx import CHECKSUMS_FILE
from hello_kubeflow.data.mnist import load_mnist
from hello_kubeflow.errors import SettingsError
from hello_kubeflow.model.train import load_model
from hello_kubeflow.settings import Settings


def test_models_are_read_as_model_and_preset_pairs() -> None:
    pairs = parse_models("forest:default, forest:book,mlp,mlp:default")
    assert pairs == [("forest", "default"), ("forest", "book"), ("mlp", "default")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mlp:book", "--models mlp:book: the mlp model's presets are default"),
        ("svm", "--models svm: unknown model, expected forest, mlp"),
        (" , ", "--models is empty"),
    ],
)
def test_a_model_or_preset_that_does_not_exist_is_refused(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_models(text)


@pytest.mark.slow
def test_compare_trains_then_reuses_and_leaves_the_served_model_alone(
    mnist_dir: Path, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"MNIST_DIR": str(mnist_dir), "HK_OUTPUT_DIR": str(tmp_path), "HK_N_JOBS": "1"},
        dotenv=None,
    )
    latest = tmp_path / "latest.json"
    latest.write_text('{"model_path": "/the/served/model"}\n')
    models = [("forest", "book"), ("mlp", "default")]
    first = compare_models(settings, models, train_limit=2000, test_limit=500)

    assert [(r.model, r.preset, r.reused) for r in first.rows] == [
        ("forest", "book", False),
        ("mlp", "default", False),
    ]
    for row in first.rows:
        assert 0.7 < row.accuracy <= 1.0
        assert row.train_seconds > 0 and row.model_bytes > 10_000
        assert 0 < row.in_process_ms < row.served_ms
        assert len(row.confusions) == 3
        assert all(true != answered and count > 0 for true, answered, count in row.confusions)
    table = first.describe()
    assert "| forest | book |" in table and "| mlp | default |" in table
    assert "Load average" in table
    with Image.open(first.chart) as chart:
        assert chart.format == "PNG" and chart.width > 800
    assert latest.read_text() == '{"model_path": "/the/served/model"}\n'

    again = compare_models(settings, models, train_limit=2000, test_limit=500)
    assert [r.reused for r in again.rows] == [True, True]
    assert [r.model_path for r in again.rows] == [r.model_path for r in first.rows]

    done = run_inv(
        "compare",
        "--models",
        "forest:book,mlp",
        "--train-limit",
        "2000",
        "--test-limit",
        "500",
        "--json",
        timeout=600,
        env={
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path),
            "MNIST_DIR": str(mnist_dir),
            "HK_OUTPUT_DIR": str(tmp_path),
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert [(r["model"], r["reused"]) for r in answer["rows"]] == [("forest", True), ("mlp", True)]
    assert [r["test_size"] for r in answer["rows"]] == [500, 500]
    assert len(answer["load_average"]) == 3

    retrained = compare_models(settings, models[1:], train_limit=2000, test_limit=1000)
    assert not retrained.rows[0].reused  # other limits: another run


def _other_test_set(mnist_dir: Path, folder: Path) -> Path:
    """The same training digits with the test digits in reverse order: another test set."""
    data = load_mnist(Settings(mnist_dir=mnist_dir))
    files = {
        "train-images-idx3-ubyte": data.x_train.reshape(-1, 28, 28),
        "train-labels-idx1-ubyte": data.y_train,
        "t10k-images-idx3-ubyte": data.x_test[::-1].reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": data.y_test[::-1],
    }
    folder.mkdir()
    sums = []
    for name, array in files.items():
        raw = idx_bytes(array)
        (folder / name).write_bytes(raw)
        sums.append(f"{hashlib.sha256(raw).hexdigest()}  {name}\n")
    (folder / CHECKSUMS_FILE).write_text("".join(sums))
    return folder


@pytest.mark.slow
def test_a_recorded_run_is_not_reused_on_other_data_and_each_row_names_its_test_set(
    mnist_dir: Path, tmp_path: Path
) -> None:
    """Same model, seed and limits, other test digits: trained again, and the table says so."""
    other = _other_test_set(mnist_dir, tmp_path / "other")
    base = {"HK_OUTPUT_DIR": str(tmp_path / "out"), "HK_N_JOBS": "1"}
    first = compare_models(
        Settings.from_env({**base, "MNIST_DIR": str(mnist_dir)}, dotenv=None),
        [("forest", "book")],
        train_limit=500,
        test_limit=200,
    )
    second = compare_models(
        Settings.from_env({**base, "MNIST_DIR": str(other)}, dotenv=None),
        [("forest", "book")],
        train_limit=500,
        test_limit=200,
    )

    assert not second.rows[0].reused
    assert second.rows[0].model_path != first.rows[0].model_path
    before, after = first.rows[0], second.rows[0]
    assert before.test_set != after.test_set
    assert f"scored on {after.scored_on}" in second.describe()
    assert f"| forest | book | {after.test_set} |" in second.describe()
    assert str(other) in after.scored_on


def _row(model: str, test_size: int, digest: str, *, subset: bool) -> Contender:
    return Contender(
        model=model,
        preset="default",
        accuracy=0.95,
        train_seconds=1.0,
        model_bytes=1_000_000,
        in_process_ms=0.1,
        served_ms=1.0,
        confusions=((4, 9, 3),),
        model_path=f"/runs/{model}",
        reused=True,
        test_size=test_size,
        test_digest=digest,
        data_source="cache mnist",
        data_is_subset=subset,
    )


def test_rows_scored_on_different_test_sets_go_into_separate_tables(tmp_path: Path) -> None:
    forest = _row("forest", 10_000, "a" * 64, subset=False)
    mlp = _row("mlp", 1_000, "b" * 64, subset=True)
    comparison = Comparison(
        rows=(forest, mlp), chart=str(tmp_path / "c.png"), load_average=(0, 0, 0)
    )

    text = comparison.describe()

    first, second = text.split("scored on ")[1:]
    assert first.startswith("10,000 test images, sha256 aaaaaaaa: cache mnist")
    assert "| forest | default | 10,000 test images, sha256 aaaaaaaa |" in first
    assert "| mlp |" not in first
    assert second.startswith("1,000 offline-subset test images, sha256 bbbbbbbb")
    assert "the 5,000-digit offline subset, not full MNIST" in second
    assert "| forest |" not in second
    assert "Accuracies on different test sets do not compare" in text


@pytest.mark.parametrize("name", ["chart.txt", "folder.png"])
def test_a_chart_that_is_not_a_png_file_is_refused_before_training(
    name: str, tmp_path: Path
) -> None:
    (tmp_path / "folder.png").mkdir()
    settings = Settings(output_dir=tmp_path)
    with pytest.raises(SettingsError, match="expected the path of a PNG file"):
        compare_models(settings, [("forest", "book")], chart=tmp_path / name)
    assert not (tmp_path / "runs").exists()


def test_inv_compare_with_an_unknown_model_exits_1_without_a_traceback(tmp_path: Path) -> None:
    done = run_inv(
        "compare",
        "--models",
        "forest,cnn",
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HK_OUTPUT_DIR": str(tmp_path)},
    )
    assert done.returncode == 1
    assert "--models cnn: unknown model" in done.stderr
    assert "Traceback" not in done.stderr


def test_each_timed_request_is_bounded_by_the_query_timeout(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HK_QUERY_TIMEOUT reaches the timed connection: no timeout of the comparison's own."""
    model = load_model(make_tiny_model(mnist_dir, tmp_path / "model"))
    image = mnist_test_pixels(mnist_dir, count=1)[0]
    seen: list[object] = []
    real = comparison.send

    sessions: set[int] = set()

    def spy(*args: Any, **kwargs: Any) -> requests.Response:
        seen.append(kwargs.get("timeout"))
        sessions.add(id(kwargs.get("session")))
        return real(*args, **kwargs)

    monkeypatch.setattr(comparison, "send", spy)
    milliseconds = served_latency_ms(Settings(query_timeout=3.5), model, image, requests=3)

    assert milliseconds > 0
    assert seen == [3.5] * (3 + comparison.WARMUP_REQUESTS)
    assert len(sessions) == 1 and id(None) not in sessions, "one kept-alive session"
