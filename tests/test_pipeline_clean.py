"""inv clean: failed and old runs go; the newest completed, the recorded runs and records stay."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from inv_support import run_inv

from hello_kubeflow.errors import SettingsError
from hello_kubeflow.pipeline.clean import clean_outputs
from hello_kubeflow.settings import Settings


def _run(output: Path, stamp: str, age: int, *, completed: bool = True) -> Path:
    """A run folder as kfp.local leaves it, `age` minutes old, and its log.

    A completed run has a dataset, a model and a report; a failed one stopped
    after loading the data.
    """
    run = output / "runs" / f"hello-kubeflow-mnist-{stamp}"
    (run / "load-data").mkdir(parents=True)
    (run / "load-data" / "dataset").write_bytes(b"x" * 1000)
    if completed:
        (run / "train" / "model").mkdir(parents=True)
        (run / "train" / "model" / "metadata.json").write_text("{}")
        (run / "evaluate" / "report").mkdir(parents=True)
        (run / "evaluate" / "report" / "evaluation.json").write_text("{}")
    log = output / "logs" / f"train-{stamp}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("log\n")
    when = 1_700_000_000 - age * 60
    for path in (*run.rglob("*"), run, log):
        os.utime(path, (when, when))
    return run


@pytest.fixture
def outputs(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Five runs, newest first; latest.json names the fourth newest; an image record."""
    output = tmp_path / "outputs"
    runs = [_run(output, f"2026-11-0{day}", age=day) for day in range(1, 6)]
    (output / "latest.json").write_text(
        json.dumps(
            {
                "model_path": str(runs[3] / "train" / "model"),
                "log_path": str(output / "logs" / "train-2026-11-04.log"),
            }
        )
    )
    (output / "image.json").write_text("{}")
    (output / "runs" / "_mnist").mkdir()  # the docker runner's staging folder
    return output, runs


def test_clean_keeps_the_newest_runs_and_the_latest_models_run(
    outputs: tuple[Path, list[Path]],
) -> None:
    output, runs = outputs
    result = clean_outputs(output, keep=2)

    assert [p.name for p in result.kept] == [runs[0].name, runs[1].name, runs[3].name]
    assert sorted(p.name for p in (output / "runs").iterdir()) == sorted(
        ["_mnist", runs[0].name, runs[1].name, runs[3].name]
    )
    assert sorted(p.name for p in (output / "logs").iterdir()) == [
        "train-2026-11-01.log",
        "train-2026-11-02.log",
        "train-2026-11-04.log",
    ]
    assert (output / "latest.json").is_file() and (output / "image.json").is_file()
    assert result.freed_bytes == 2 * (1000 + 2 + 2 + 4)
    assert result.describe().splitlines()[0].startswith("removed ")


def test_dry_run_lists_what_would_go_and_removes_nothing(
    outputs: tuple[Path, list[Path]],
) -> None:
    output, runs = outputs
    before = sorted(str(p) for p in output.rglob("*"))

    result = clean_outputs(output, keep=1, dry_run=True)

    assert sorted(str(p) for p in output.rglob("*")) == before
    text = result.describe()
    assert f"would remove {runs[1]}" in text
    assert f"would remove {runs[3]}" not in text
    assert "would free" in text


def test_keep_zero_still_keeps_the_model_inv_serve_loads(
    outputs: tuple[Path, list[Path]],
) -> None:
    output, runs = outputs
    clean_outputs(output, keep=0)
    assert [p.name for p in (output / "runs").iterdir() if p.name != "_mnist"] == [runs[3].name]


def test_clean_with_nothing_there_says_so(tmp_path: Path) -> None:
    result = clean_outputs(tmp_path / "none")
    assert result.removed == ()
    assert result.describe() == "nothing to remove; kept 0 run(s) and logs"


def test_negative_keep_is_refused() -> None:
    with pytest.raises(SettingsError, match="--keep=-1"):
        clean_outputs(Settings().output_dir, keep=-1)


def test_inv_clean_dry_run_json(outputs: tuple[Path, list[Path]]) -> None:
    output, runs = outputs
    done = run_inv(
        "clean",
        "--keep",
        "4",
        "--dry-run",
        "--json",
        env={"HK_OUTPUT_DIR": str(output), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["removed"] == [str(runs[4]), str(output / "logs" / "train-2026-11-05.log")]
    assert result["dry_run"] is True
    assert runs[4].is_dir()


def test_clean_keeps_every_recorded_run_counts_only_completed_ones_and_drops_failed_first(
    tmp_path: Path,
) -> None:
    """Compare's records, latest.json, completed and failed runs: each kept or removed rightly."""
    output = tmp_path / "outputs"
    forest, network, served, old, newest = (
        _run(output, f"2026-11-1{day}", age=60 - day) for day in range(5)
    )
    failed = [_run(output, f"2026-11-2{day}", age=9 - day, completed=False) for day in range(3)]
    (output / "recorded").mkdir()
    for name, run in (("forest-book", forest), ("mlp-default", network)):
        record = {
            "model_path": str(run / "train" / "model"),
            "dataset_path": str(run / "load-data" / "dataset"),
            "options": {"seed": 42},
        }
        (output / "recorded" / f"{name}.json").write_text(json.dumps(record))
    (output / "latest.json").write_text(json.dumps({"model_path": str(served / "train" / "model")}))

    result = clean_outputs(output, keep=1)

    runs = sorted(p.name for p in (output / "runs").iterdir())
    assert runs == sorted(p.name for p in (forest, network, served, newest))
    logs = sorted(p.name for p in (output / "logs").iterdir())
    assert logs == sorted(
        f"train-{p.name.removeprefix('hello-kubeflow-mnist-')}.log"
        for p in (forest, network, served, newest)
    )  # each kept run keeps its log; failed runs' logs go
    removed_runs = [p for p in result.removed if p.parent.name == "runs"]
    assert removed_runs[:3] == sorted(failed, reverse=True)  # the failed runs go first
    assert removed_runs[3:] == [old]
    assert result.failed == tuple(sorted(failed, reverse=True))
    assert f"removed {failed[0]} (a failed run's leftovers)" in result.describe()
    assert f"removed {old}\n" in result.describe()
    assert (output / "recorded" / "forest-book.json").is_file()


def test_the_newest_run_without_a_report_may_still_be_running_and_stays(tmp_path: Path) -> None:
    output = tmp_path / "outputs"
    done = _run(output, "2026-11-01", age=30)
    failed = _run(output, "2026-11-02", age=20, completed=False)
    running = output / "runs" / "hello-kubeflow-mnist-2026-11-03"
    (running / "load-data").mkdir(parents=True)  # just started: changed now

    result = clean_outputs(output, keep=0)

    assert running.is_dir() and running in result.kept
    # Each log goes with its run, the failed run's too.
    assert not (output / "logs" / "train-2026-11-02.log").exists()
    assert result.removed[:2] == (failed, done)


def test_a_log_named_as_inv_train_names_it_goes_with_the_run_kfp_local_named(
    tmp_path: Path,
) -> None:
    """`inv train` stamps its log just before kfp.local names the run folder."""
    output = tmp_path / "outputs"
    done = _run(output, "2026-11-01-10-00-05-123456", age=30)
    failed = _run(output, "2026-11-01-11-00-02-654321", age=20, completed=False)
    for run, log in ((done, "train-20261101-100004.log"), (failed, "train-20261101-110001.log")):
        stamp = run.name.removeprefix("hello-kubeflow-mnist-")
        (output / "logs" / f"train-{stamp}.log").rename(output / "logs" / log)

    clean_outputs(output, keep=1)

    assert [p.name for p in (output / "logs").iterdir()] == ["train-20261101-100004.log"]
