"""`inv compare`: the models side by side (trained, or a matching recorded run reused), in
one table per test set and one chart.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from requests import Session

from hello_kubeflow.data.mnist import load_mnist, scale_pixels
from hello_kubeflow.errors import DataFileError, ModelError, ServingError, SettingsError
from hello_kubeflow.http_client import send
from hello_kubeflow.model import LATEST_FILE
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

    Times are medians for one image (`in_process_ms` on the fast path in this process,
    `served_ms` through the server, Seldon JSON); `train_seconds` is the fit's;
    `model_bytes` the model directory's files; `confusions` its three commonest mistakes
    (true digit, answered digit, count); `reused` a recorded run; `test_digest` the test
    set's digest before the limit; `data_is_subset` the 5,000-digit offline subset.
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
    def confused(self) -> str:
        """The commonest mistakes as `true→answered ×count`, or `nothing`."""
        return ", ".join(f"{t}→{p} ×{n}" for t, p, n in self.confusions) or "nothing"

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
            lines += [
                f"| {row.model} | {row.preset} | {row.test_set} | {row.accuracy:.2%} "
                f"| {row.train_seconds:.1f} | {row.model_bytes / 1e6:.1f} "
                f"| {row.in_process_ms:.3f} | {row.served_ms:.3f} | {row.confused} |"
                for row in rows
            ]
            tables.append("\n".join(lines))
        return "\n\n".join(tables)

    def describe(self) -> str:
        """The tables, where the chart is, and the load it was measured under."""
        one, five, fifteen = self.load_average
        several = len(self.test_sets()) > 1
        apart = "Accuracies on different test sets do not compare. " if several else ""
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
    """Train (or reuse) each model, measure it, and draw the chart; `latest.json` (the model
    `inv serve` loads) is left as it was.

    Args:
        settings: the workflow settings (output folder, data, serving limits).
        models: (model, preset) pairs, from `cli/compare.py` `parse_models`, trained with `seed`.
        train_limit: train on the first N training images (0: all); `test_limit` alike.
        retrain: train every model again even when a recorded run matches.
        chart: where the PNG goes (default: `<output_dir>/comparison.png`).

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
    # No hashing for files verified as they load.
    digests = load_mnist(settings).digests() if recorded and not retrain else None
    try:
        for model, preset in models:
            options = RunOptions(
                model=model,
                preset=preset,
                seed=seed,
                train_limit=train_limit,
                test_limit=test_limit,
            )
            path = recorded_run_path(settings.output_dir, model, preset)
            summary = None if digests is None else reusable_run(path, options, digests)
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


def reusable_run(path: Path, options: RunOptions, digests: tuple[str, str]) -> RunSummary | None:
    """The run recorded at `path` (`recorded_run_path`), if intact and made with these
    options and on the data of these `digests` (training, test) a run would use now.
    """
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
        settings: serving settings (the port is chosen free); `query_timeout` bounds each request.
        model: the loaded model to serve; `image` the (1, 784) pixels sent every time.
        requests: requests timed, after `WARMUP_REQUESTS` unmeasured ones.

    Raises:
        ServingError: the server did not start or answered an error.
    """
    body = seldon_payload(image)
    local = settings.replace(serve_host="127.0.0.1", serve_port=0)
    times: list[float] = []
    with (
        running_server(local, Path(model.directory), model=model) as server,
        Session() as session,  # one connection, kept alive
    ):
        url = server.url + SELDON_PATH
        session.headers["Content-Type"] = "application/json"
        session.trust_env = False  # loopback: no proxy, no netrc, no per-request lookups
        for index in range(requests + WARMUP_REQUESTS):
            start = time.perf_counter()
            response = send("POST", url, timeout=settings.query_timeout, session=session, data=body)
            if index >= WARMUP_REQUESTS:
                times.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise ServingError(f"the model server answered HTTP {response.status_code}")
        check_answer(response.json(), "seldon", rows=1)
    return float(np.median(times) * 1000)


def save_comparison_png(comparison: Comparison, path: Path) -> Path:
    """Draw the comparison into the PNG `path` (folders made): a panel per figure, a bar per
    model, values written on the bars; return `path`.
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
        + "\n".join(f"{r.label} confuses most: {r.confused}" for r in rows),
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
