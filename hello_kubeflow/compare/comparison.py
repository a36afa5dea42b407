"""`inv compare`: the models side by side, in one table and one chart.

Each model asked for (`forest:default`, `forest:book`, `mlp`, ...) is trained by
the same pipeline as `inv train` (locally), unless a recorded run of it with the
same seed, data limits and data (training and test digits by digest) is still on
disk (`<output_dir>/recorded/`), which is reused. For each: test accuracy,
training seconds, model size, the median latency of one image in this process and
through the model server (Seldon protocol, loopback, server in a thread of this
process), and the three mistakes it makes most. Each row says which test set it
was scored on; rows scored on different test sets go into separate tables.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hello_kubeflow.data.mnist import load_mnist, scale_pixels
from hello_kubeflow.errors import DataFileError, ModelError, ServingError, SettingsError
from hello_kubeflow.model.artifact import LATEST_FILE
from hello_kubeflow.model.evaluation import one_image_latency_ms
from hello_kubeflow.model.train import load_model
from hello_kubeflow.pipeline.local import RunOptions, RunSummary, recorded_run_path, run_local
from hello_kubeflow.pipeline.steps import read_test_images
from hello_kubeflow.query.answers import check_answer, seldon_payload
from hello_kubeflow.query.client import SELDON_PATH
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

CHART_FILE = "comparison.png"
SERVED_REQUESTS = 300
WARMUP_REQUESTS = 20  # sent before the timed ones, not counted


@dataclass(frozen=True)
class Contender:
    """One model's figures in the comparison.

    Attributes:
        model: `forest` or `mlp`.
        preset: its preset.
        accuracy: share of the test images it gets right.
        train_seconds: wall seconds of the fit (the training step's own figure).
        model_bytes: size of the model directory's files (scikit-learn + ONNX).
        in_process_ms: median milliseconds for one image, fast path, in this process.
        served_ms: median milliseconds for one image through the server (Seldon JSON).
        confusions: the three mistakes it makes most: (true digit, answered digit, count).
        model_path: the model directory.
        reused: True when a recorded run was reused instead of training again.
        test_size: how many test images it was scored on.
        test_digest: the digest of the test set it was scored on (before the limit).
        data_source: where its data came from, for a person to read.
        data_is_subset: True when trained and scored on the 5,000-digit offline subset.
    """

    model: str
    preset: str
    accuracy: float
    train_seconds: float
    model_bytes: int
    in_process_ms: float
    served_ms: float
    confusions: tuple[tuple[int, int, int], ...]
    model_path: str
    reused: bool
    test_size: int
    test_digest: str
    data_source: str
    data_is_subset: bool

    @property
    def label(self) -> str:
        """`model/preset`, as the table and chart name it."""
        return f"{self.model}/{self.preset}"

    @property
    def test_set(self) -> str:
        """The test set in a few words: its size, whether the subset, its digest's start."""
        kind = " offline-subset" if self.data_is_subset else ""
        return f"{self.test_size:,}{kind} test images, sha256 {self.test_digest[:8] or '?'}"

    @property
    def scored_on(self) -> str:
        """The test set in full: `test_set` and where the data came from."""
        if self.data_is_subset:
            return f"{self.test_set}: the 5,000-digit offline subset, not full MNIST"
        return f"{self.test_set}: {self.data_source}"


@dataclass(frozen=True)
class Comparison:
    """The comparison: one row per model, the chart, and the machine's load."""

    rows: tuple[Contender, ...]
    chart: str
    load_average: tuple[float, float, float]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: rows as dicts (confusions as lists), chart path, load average."""
        return asdict(self)

    def test_sets(self) -> dict[str, list[Contender]]:
        """The rows by the test set they were scored on (`scored_on`), in order of first row."""
        groups: dict[str, list[Contender]] = {}
        for row in self.rows:
            groups.setdefault(row.scored_on, []).append(row)
        return groups

    def table(self) -> str:
        """One Markdown table per test set, each headed by it (people read them as text too)."""
        tables = []
        for scored_on, rows in self.test_sets().items():
            lines = [
                f"scored on {scored_on}",
                "",
                "| model | preset | test set | test accuracy | training s | size MB "
                "| in-process ms | served ms | confuses most (true→answered ×count) |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for row in rows:
                confused = ", ".join(f"{t}→{p} ×{n}" for t, p, n in row.confusions) or "nothing"
                lines.append(
                    f"| {row.model} | {row.preset} | {row.test_set} | {row.accuracy:.2%} "
                    f"| {row.train_seconds:.1f} | {row.model_bytes / 1e6:.1f} "
                    f"| {row.in_process_ms:.3f} | {row.served_ms:.3f} | {confused} |"
                )
            tables.append("\n".join(lines))
        return "\n\n".join(tables)

    def describe(self) -> str:
        """The tables, where the chart is, and the load it was measured under."""
        one, five, fifteen = self.load_average
        apart = ""
        if len(self.test_sets()) > 1:
            apart = "Accuracies on different test sets do not compare. "
        return (
            f"{self.table()}\n\n"
            f"{apart}Latencies are medians for one image. "
            f"Load average {one:.2f} {five:.2f} {fifteen:.2f} (2 busy cores slow every figure).\n"
            f"chart: {self.chart}"
        )


def compare_models(
    settings: Settings,
    models: list[tuple[str, str]],
    *,
    seed: int = 42,
    train_limit: int = 0,
    test_limit: int = 0,
    retrain: bool = False,
    chart: Path | None = None,
) -> Comparison:
    """Train (or reuse) each model, measure it, and draw the chart.

    `latest.json` (the model `inv serve` loads) is left as it was when it existed.

    Args:
        settings: the workflow settings (output folder, data, serving limits).
        models: (model, preset) pairs, from `cli/compare.py` `parse_models`.
        seed: the training seed of every model.
        train_limit: train on the first N training images (0: all).
        test_limit: score on the first N test images (0: all).
        retrain: train every model again even when a recorded run matches.
        chart: where the PNG goes (default: `<output_dir>/comparison.png`).

    Returns:
        The comparison.

    Raises:
        StepFailedError, PipelineError: a training run failed.
        ModelError, ServingError: a model could not be loaded or served.
        SettingsError: the chart's path does not end in .png or is a folder.
    """
    chart_path = chart or settings.output_dir / CHART_FILE
    if chart_path.suffix.lower() != ".png" or chart_path.is_dir():
        raise SettingsError(
            [f"--chart {chart_path}: expected the path of a PNG file to write, ending in .png"]
        )
    latest = settings.output_dir / LATEST_FILE
    kept = latest.read_bytes() if latest.is_file() else None
    rows: list[Contender] = []
    recorded = any(recorded_run_path(settings.output_dir, *pair).is_file() for pair in models)
    digests = _data_digests(settings) if recorded and not retrain else None
    try:
        for model, preset in models:
            options = RunOptions(
                model=model,
                preset=preset,
                seed=seed,
                train_limit=train_limit,
                test_limit=test_limit,
            )
            summary = None if digests is None else reusable_run(settings, options, digests)
            reused = summary is not None
            if summary is None:
                log.info("training %s/%s for the comparison", model, preset)
                summary = run_local(settings, options)
            else:
                log.info("reusing the recorded %s/%s run in %s", model, preset, summary.model_path)
            rows.append(_measure(settings, summary, reused=reused))
    finally:
        if kept is not None:
            latest.write_bytes(kept)
    one, five, fifteen = os.getloadavg()
    comparison = Comparison(
        rows=tuple(rows),
        chart=str(chart_path),
        load_average=(round(one, 2), round(five, 2), round(fifteen, 2)),
    )
    save_comparison_png(comparison, Path(comparison.chart))
    return comparison


def reusable_run(
    settings: Settings, options: RunOptions, digests: tuple[str, str]
) -> RunSummary | None:
    """The recorded run of this model and preset, if made with these options and data, intact.

    Args:
        settings: where the records are (`output_dir`).
        options: the run's model, preset, seed and limits.
        digests: the training and test data's digests (`data_digest`) a run would use now;
            a record without them, or with others, was made on other data.
    """
    path = recorded_run_path(settings.output_dir, options.model, options.preset)
    try:
        record = json.loads(path.read_text())
        same = record.pop("options") == asdict(options)
        summary = RunSummary(**record)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = (summary.model_path, summary.metrics_path, summary.dataset_path)
    same = same and (summary.train_digest, summary.test_digest) == digests
    if not same or not all(Path(f).exists() for f in files):
        return None
    return summary


def _data_digests(settings: Settings) -> tuple[str, str]:
    """The digests of the training and test data a run would load now (as the step would)."""
    return load_mnist(settings).digests()  # no hashing for files verified as they load


def _measure(settings: Settings, summary: RunSummary, *, reused: bool) -> Contender:
    evaluation = json.loads(Path(summary.metrics_path).read_text())
    loaded = load_model(summary.model_path)
    try:
        image = scale_pixels(read_test_images(summary.dataset_path).x[:1])
    except DataFileError as exc:
        raise ModelError(f"the run's test images are gone ({exc}): add --retrain") from None
    confusions = evaluation.get("top_confusions")
    if confusions is None:
        raise ModelError(f"{summary.metrics_path} has no confusions: add --retrain")
    return Contender(
        model=summary.model,
        preset=summary.preset,
        accuracy=float(evaluation["accuracy"]),
        train_seconds=summary.train_seconds,
        model_bytes=sum(int(f["bytes"]) for f in loaded.metadata["files"].values()),
        in_process_ms=round(one_image_latency_ms(loaded, image), 4),
        served_ms=round(served_latency_ms(settings, loaded, image), 4),
        confusions=tuple((int(t), int(p), int(n)) for t, p, n in confusions),
        model_path=summary.model_path,
        reused=reused,
        test_size=summary.test_size,
        test_digest=summary.test_digest,
        data_source=summary.data_source,
        data_is_subset=summary.data_is_subset,
    )


def served_latency_ms(
    settings: Settings, model: Any, image: npt.NDArray[np.float32], requests: int = SERVED_REQUESTS
) -> float:
    """Median milliseconds of one-image Seldon requests to the model server on loopback.

    Args:
        settings: serving settings (the port is chosen free); `query_timeout`
            (HK_QUERY_TIMEOUT) bounds each request.
        model: the loaded model to serve.
        image: (1, 784) pixels sent in every request.
        requests: requests timed, after 20 unmeasured ones.

    Raises:
        ServingError: the server did not start or answered an error.
    """
    body = seldon_payload(image)
    headers = {"Content-Type": "application/json"}
    local = settings.replace(serve_host="127.0.0.1", serve_port=0)
    with running_server(local, Path(model.directory), model=model) as server:
        connection = http.client.HTTPConnection(
            "127.0.0.1", server.port, timeout=settings.query_timeout
        )
        times: list[float] = []
        try:
            for index in range(requests + WARMUP_REQUESTS):
                start = time.perf_counter()
                connection.request("POST", SELDON_PATH, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                if index >= WARMUP_REQUESTS:
                    times.append(time.perf_counter() - start)
                if response.status != 200:
                    raise ServingError(f"the model server answered HTTP {response.status}")
            check_answer(json.loads(answer), "seldon", rows=1)
        finally:
            connection.close()
    return float(np.median(times) * 1000)


def save_comparison_png(comparison: Comparison, path: Path) -> Path:
    """Draw the comparison: one panel per figure, one bar per model, values written on bars.

    Args:
        comparison: what `compare_models` measured.
        path: where the PNG goes (parent folders are created).

    Returns:
        The PNG's path.
    """
    rows = comparison.rows
    labels = [f"{row.label}\n{row.test_set}" for row in rows]
    panels = [
        ("test accuracy % (higher is better)", [100 * r.accuracy for r in rows], "{:.2f}"),
        ("training seconds", [r.train_seconds for r in rows], "{:.1f}"),
        ("model size MB", [r.model_bytes / 1e6 for r in rows], "{:.1f}"),
        ("one image in-process, ms", [r.in_process_ms for r in rows], "{:.3f}"),
        ("one image served, ms (p50)", [r.served_ms for r in rows], "{:.3f}"),
    ]
    figure = Figure(figsize=(13, 2.6 + 0.6 * len(rows)), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes_row = figure.subplots(1, len(panels), sharey=True)
    positions = np.arange(len(rows))
    for axes, panel in zip(axes_row, panels, strict=True):
        _draw_panel(axes, positions, *panel)
    axes_row[0].set_yticks(positions, labels)
    axes_row[0].invert_yaxis()
    one, five, fifteen = comparison.load_average
    scored = "\n".join(f"scored on {test_set}" for test_set in comparison.test_sets())
    figure.suptitle(
        f"MNIST models (load average {one:.1f} {five:.1f} {fifteen:.1f})\n{scored}\n"
        + _confusions_text(rows),
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def _draw_panel(
    axes: Any, positions: npt.NDArray[Any], title: str, values: list[float], shown: str
) -> None:
    """One figure's bars, one per model, with its value written on each."""
    bars = axes.barh(positions, values, color=[_COLOURS[i % len(_COLOURS)] for i in positions])
    axes.set_title(title, fontsize=9)
    axes.bar_label(bars, labels=[shown.format(v) for v in values], fontsize=8, padding=2)
    axes.set_xlim(0, max(values, default=1) * 1.35 or 1)
    axes.tick_params(axis="x", labelsize=7)
    if title.startswith("test accuracy"):
        low = min(values, default=90)
        axes.set_xlim(max(0.0, np.floor(low) - 1.5), 100.4)


def _confusions_text(rows: Sequence[Contender]) -> str:
    """A line per model: the digits it confuses most."""
    return "\n".join(
        f"{r.label} confuses most: "
        + (", ".join(f"{t}→{p} ×{n}" for t, p, n in r.confusions) or "nothing")
        for r in rows
    )
