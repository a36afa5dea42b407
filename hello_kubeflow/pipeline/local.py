"""Compile the pipeline and run it locally with `kfp.local` (this environment, or the image).

Artifacts land under `<output_dir>/runs`; `latest.json` names the last run's model for `inv serve`.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kfp import compiler, local

from hello_kubeflow.data.idx import CHECKSUMS_FILE
from hello_kubeflow.errors import PipelineError, SettingsError
from hello_kubeflow.images.record import pipeline_image
from hello_kubeflow.model import CONFUSION_PNG, EVALUATION_FILE, LATEST_FILE, RECORDED_DIR
from hello_kubeflow.pipeline.definition import make_pipeline
from hello_kubeflow.pipeline.runlog import captured_progress, step_failure
from hello_kubeflow.settings import MODEL_PRESETS, Settings

log = logging.getLogger(__name__)

RUNNERS = ("subprocess", "docker")


@dataclass(frozen=True)
class RunSummary:
    """What a finished run produced."""

    accuracy: float
    model_path: str
    metrics_path: str
    confusion_png: str
    seconds: float
    preset: str
    n_estimators: int
    train_size: int
    test_size: int
    runner: str
    data_source: str
    data_is_subset: bool = False
    log_path: str = ""
    dataset_path: str = ""
    model: str = "forest"
    seed: int = 42
    train_seconds: float = 0.0
    train_digest: str = ""
    test_digest: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The summary as a JSON-serialisable dict."""
        return asdict(self)

    def describe(self) -> str:
        """The summary as a person reads it."""
        lines = []
        if self.data_is_subset:
            lines.append(
                "warning: no MNIST files and no network: trained and scored on the 5,000-digit "
                "offline subset; set MNIST_DIR or restore the network for full MNIST"
            )
        shape = f"{self.n_estimators} trees" if self.model == "forest" else "neural network"
        lines += [
            f"trained: {self.model} model, {self.preset} preset, {shape}, "
            f"{self.train_size:,} training images ({self.data_source})",
            f"test accuracy: {self.accuracy:.2%} on {self.test_size:,} images",
            f"model:   {self.model_path}",
            f"metrics: {self.metrics_path}",
            f"confusion matrix: {self.confusion_png}",
            f"log:     {self.log_path}",
            f"took {self.seconds:.1f} s ({self.runner} runner)",
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class RunOptions:
    """Parameters of one run, as given on the command line."""

    preset: str = "default"
    n_estimators: int = 0
    seed: int = 42
    train_limit: int = 0
    test_limit: int = 0
    model: str = "forest"

    def __post_init__(self) -> None:
        # The model, preset, trees and seed each come checked from the settings; not together.
        problems = _model_problems(self.model, self.preset, self.n_estimators)
        problems += [
            f"{flag}={value}: expected 0 ({meaning}) or a positive number"
            for flag, value, meaning in (
                ("--train-limit", self.train_limit, "all training images"),
                ("--test-limit", self.test_limit, "all test images"),
            )
            if value < 0
        ]
        if problems:
            raise SettingsError(problems)

    @classmethod
    def from_settings(cls, settings: Settings, *, train_limit: int, test_limit: int) -> RunOptions:
        """Options from the (validated) settings, with the command line's data limits."""
        return cls(
            model=settings.model_kind,
            preset=settings.preset,
            n_estimators=settings.n_estimators or 0,
            seed=settings.seed,
            train_limit=train_limit,
            test_limit=test_limit,
        )

    def arguments(
        self,
        n_jobs: int,
        mnist_mirrors: Sequence[str],
        download_timeout: float,
        *,
        mnist_dir: Path | None,
        cache_dir: Path | None = None,
    ) -> dict[str, Any]:
        """The pipeline's parameters: these options plus what the steps would otherwise read.

        A step reads no settings of its own (a pod's environment is not this machine's).

        Args:
            n_jobs, mnist_mirrors, download_timeout: the starting machine's settings.
            mnist_dir: a folder of IDX files the steps can read (None: the cache or mirrors).
            cache_dir: where the steps cache MNIST (None: their own default).
        """
        return {
            "model_kind": self.model,
            "preset": self.preset,
            "n_estimators": self.n_estimators,
            "seed": self.seed,
            "n_jobs": n_jobs,
            "mnist_dir": str(mnist_dir) if mnist_dir else "",
            "mnist_mirrors": ",".join(mnist_mirrors),
            "cache_dir": str(cache_dir) if cache_dir else "",
            "download_timeout": download_timeout,
            "train_limit": self.train_limit,
            "test_limit": self.test_limit,
        }


def _model_problems(model: str, preset: str, trees: int) -> list[str]:
    """What is wrong with a model, preset and tree count together."""
    if model not in MODEL_PRESETS:
        return [f"--model={model}: expected one of {', '.join(MODEL_PRESETS)}"]
    problems = []
    if preset not in MODEL_PRESETS[model]:
        problems.append(
            f"--preset={preset}: the {model} model's presets are {', '.join(MODEL_PRESETS[model])}"
        )
    if trees and model != "forest":
        problems.append(f"--trees={trees}: trees are for --model forest, not {model}")
    return problems


def compile_pipeline(
    settings: Settings,
    output: Path,
    image: str | None = None,
    *,
    deploy: bool = False,
    pull_secret: str = "",
) -> Path:
    """Compile the pipeline to KFP IR YAML at `output`; return `output`.

    Args:
        settings: the settings naming the image when `image` is None.
        output: the YAML file to write.
        image: the image every step runs in (default: `images.record.pipeline_image`).
        deploy: end with the step that serves the model in the cluster (cluster runs).
        pull_secret: the image pull secret every step and the served model name ("": none).
    """
    pipeline = make_pipeline(
        image or pipeline_image(settings), deploy=deploy, pull_secret=pull_secret
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(output))
    return output


def run_local(
    settings: Settings, options: RunOptions | None = None, *, runner: str = "subprocess"
) -> RunSummary:
    """Run the pipeline on this machine and record its model as the latest.

    Args:
        options: the run's parameters (preset, trees, seed, data limits).
        runner: `subprocess` (this environment) or `docker` (the project image).

    Raises:
        StepFailedError: naming the step that failed and its cause.
        PipelineError: for an unknown runner or a run that produced nothing.
    """
    options = options or RunOptions()
    if runner not in RUNNERS:
        raise PipelineError(f"--runner {runner!r}: use one of {', '.join(RUNNERS)}")
    root = settings.output_dir.resolve() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    image = pipeline_image(settings)
    mnist_dir = settings.mnist_dir
    cache_dir: Path | None = settings.cache_dir
    if runner == "docker":
        from hello_kubeflow.images.container import step_container_args  # Docker SDK: docker only

        local_runner: Any = local.DockerRunner(**step_container_args())
        # Only the pipeline root is mounted into the step containers.
        mnist_dir = _stage_mnist(settings, root / "_mnist")
        cache_dir = None
    else:
        local_runner = local.SubprocessRunner(use_venv=False)
    local.init(runner=local_runner, pipeline_root=str(root), raise_on_error=True)
    pipeline = make_pipeline(image)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = settings.output_dir.resolve() / "logs" / f"train-{stamp}.log"
    if runner == "docker":
        if "@sha256:" not in image:
            log.warning("image %s is not pinned by digest: run `inv build-push` first", image)
        log.info("running pipeline %s locally, each step in image %s", pipeline.name, image)
    else:
        log.info("running pipeline %s locally, in this Python environment", pipeline.name)
    log.info("full log: %s", log_path)
    started = time.monotonic()
    with captured_progress(sys.stderr, log_path) as tail, warnings.catch_warnings():
        # kfp warns that a non-"python" image name may lack Python; ours has it.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        # display names are for the Pipelines UI; kfp.local says it ignores them.
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        try:
            outputs = pipeline(
                **options.arguments(
                    settings.n_jobs,
                    settings.mnist_mirrors,
                    settings.download_timeout,
                    mnist_dir=mnist_dir,
                    cache_dir=cache_dir,
                )
            )
        except RuntimeError as exc:
            raise step_failure(str(exc), tail, log_path) from None
    seconds = time.monotonic() - started
    return _record(
        settings.output_dir, outputs, options, runner=runner, seconds=seconds, log_path=log_path
    )


def _record(
    output_dir: Path,
    outputs: Any,
    options: RunOptions,
    *,
    runner: str,
    seconds: float,
    log_path: Path,
) -> RunSummary:
    # kfp.local hands back a finished task whose `outputs` hold the pipeline's artifacts.
    try:
        model_dir = Path(outputs.outputs["model"].path)
        report_dir = Path(outputs.outputs["report"].path)
        dataset = str(outputs.outputs["dataset"].path)
        data = dict(outputs.outputs["dataset"].metadata)  # what the load-data step recorded
    except (KeyError, TypeError, AttributeError):
        raise PipelineError("the pipeline finished but returned no model") from None
    metadata = json.loads((model_dir / "metadata.json").read_text())
    evaluation = json.loads((report_dir / EVALUATION_FILE).read_text())
    summary = RunSummary(
        accuracy=float(evaluation["accuracy"]),
        model_path=str(model_dir),
        metrics_path=str(report_dir / EVALUATION_FILE),
        confusion_png=str(report_dir / CONFUSION_PNG),
        seconds=round(seconds, 2),
        preset=options.preset,
        n_estimators=int(metadata["parameters"].get("n_estimators", 0)),
        train_size=int(metadata["train_size"]),
        test_size=int(evaluation["test_size"]),
        runner=runner,
        data_source=str(metadata.get("data_source", "")),
        data_is_subset=bool(metadata.get("data_is_subset", False)),
        log_path=str(log_path),
        dataset_path=dataset,
        model=str(metadata.get("model", "forest")),
        seed=options.seed,
        train_seconds=float(metadata.get("train_seconds") or 0.0),
        train_digest=str(data.get("train_digest", "")),
        test_digest=str(data.get("test_digest", "")),
    )
    text = json.dumps(summary.as_dict(), indent=2) + "\n"
    (output_dir / LATEST_FILE).write_text(text)
    recorded = recorded_run_path(output_dir, summary.model, summary.preset)
    recorded.parent.mkdir(parents=True, exist_ok=True)
    recorded.write_text(
        json.dumps({**summary.as_dict(), "options": asdict(options)}, indent=2) + "\n"
    )
    return summary


def recorded_run_path(output_dir: Path, model: str, preset: str) -> Path:
    """Where the last local run of a model and preset is recorded (`inv compare` reuses it)."""
    return output_dir / RECORDED_DIR / f"{model}-{preset}.json"


def _stage_mnist(settings: Settings, target: Path) -> Path | None:
    """Copy verified MNIST files where the step containers see them; None when there are none."""
    from hello_kubeflow.data.mnist import mnist_files  # numpy: the docker runner only

    files = mnist_files(settings)
    if not files:
        return None
    target.mkdir(parents=True, exist_ok=True)
    for source in files:
        destination = target / source.name
        if not destination.exists() or destination.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, destination)
    # A dataset verified against its own checksums keeps them; MNIST itself must not
    # inherit another dataset's (left here by an earlier run).
    checksums = files[0].parent / CHECKSUMS_FILE
    if settings.mnist_dir is not None and checksums.is_file():
        shutil.copyfile(checksums, target / CHECKSUMS_FILE)
    else:
        (target / CHECKSUMS_FILE).unlink(missing_ok=True)
    return target
