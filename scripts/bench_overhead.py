"""Time a local run's overhead over the fit, and the least any run of this shape can cost.

Usage:
    python scripts/bench_overhead.py --mnist-dir DIR [--runs 5] [--preset book] [--checkout DIR]

The target is the run's own work: the local pipeline's overhead over the fit
(the wall time of `inv train` minus the seconds the model spends fitting) minus
the floor below, at most `TARGET_SECONDS`. This prints, as medians of `--runs`
runs, each a fresh process timed from outside:

- the real thing: `inv train --preset PRESET --json` (wall, fit, overhead), and
  how long each step took, from the run's own log;
- the floor: what every run of this design pays before it reads a single
  digit. Invoke and `tasks.py` (`inv --list`); a pipeline of the same shape
  (three steps passing a Dataset, a Model, Metrics, ClassificationMetrics and an
  Artifact) whose steps do nothing, run by `kfp.local`'s SubprocessRunner from a
  fresh interpreter, as `inv train` runs ours; and importing scikit-learn's
  forest in a fresh interpreter, which the train step must do.

The runs share one cache folder, as a user's runs do: the first reads and
verifies MNIST and keeps the dataset, the next ones copy it; the first run's
overhead is printed apart, and the overhead's median (the one compared with the
target) is of the runs after it.

Run it with the project's interpreter (`.venv/bin/python`). `--checkout` times
another tree (e.g. an older commit from `git archive`: "before"); its package
comes first on the steps' path too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0  # for the run's own work: the overhead minus the floor
STEPS = ("load-data", "train", "evaluate")

NOOP_PIPELINE = """
from kfp import dsl, local
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def load_data(dataset: Output[Dataset]) -> None:
    open(dataset.path, "w").close()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def train(dataset: Input[Dataset], model: Output[Model]) -> None:
    open(model.path, "w").close()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def evaluate(
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[Artifact],
) -> None:
    metrics.log_metric("accuracy", 0.0)
    open(report.path, "w").close()


@dsl.pipeline(name="noop")
def noop() -> None:
    data = load_data()
    trained = train(dataset=data.outputs["dataset"])
    evaluate(dataset=data.outputs["dataset"], model=trained.outputs["model"])


local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=ROOT, raise_on_error=True)
noop()
"""


def timed(command: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run `command`; return (wall seconds, stdout). A failure stops the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def step_seconds(log_path: Path) -> dict[str, float]:
    """Each step's seconds, from kfp.local's 'Executing task' and 'finished' lines."""
    started: dict[str, datetime] = {}
    seconds: dict[str, float] = {}
    pattern = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task|Task) '([\w-]+)'")
    for line in log_path.read_text().splitlines():
        match = pattern.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match[1], "%H:%M:%S.%f")
        if match[2] == "Executing task":
            started[match[3]] = stamp
        elif "finished" in line and match[3] in started:
            seconds[match[3]] = (stamp - started[match[3]]).total_seconds()
    return seconds


def median_row(what: str, values: list[float]) -> tuple[str, str]:
    if not values:  # e.g. a step whose log lines no longer match `step_seconds`
        return what, "n/a (not found in the runs' logs)"
    spread = f" (min {min(values):.2f}, max {max(values):.2f})" if len(values) > 1 else ""
    return what, f"{statistics.median(values):.2f}{spread}"


def repeat(runs: int, measure: Callable[[], float]) -> list[float]:
    return [measure() for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", type=Path, required=True, help="full MNIST")
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--preset", default="book", help="preset of the timed run")
    parser.add_argument("--checkout", type=Path, default=REPO, help="the tree to time")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: expected at least 1 run")
    if not args.mnist_dir.is_dir():
        parser.error(f"--mnist-dir {args.mnist_dir}: no such folder (it holds MNIST's IDX files)")
    python = sys.executable
    checkout = args.checkout.resolve()
    if not (checkout / "tasks.py").is_file():
        parser.error(f"--checkout {args.checkout}: not a checkout of this project (no tasks.py)")
    base_env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "PYTHONPATH": str(checkout)}
    loads = [os.getloadavg()[0]]

    walls: list[float] = []
    fits: list[float] = []
    pipelines: list[float] = []
    steps: dict[str, list[float]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as scratch:
        env = {
            **base_env,
            "HOME": scratch,
            "HK_OUTPUT_DIR": scratch,
            "MNIST_DIR": str(args.mnist_dir.resolve()),
        }
        for _ in range(args.runs):
            wall, out = timed(
                [python, "-m", "invoke", "train", "--preset", args.preset, "--json"],
                cwd=checkout,
                env=env,
            )
            summary = json.loads(out.strip().splitlines()[-1])
            walls.append(wall)
            fits.append(float(summary["train_seconds"]))
            pipelines.append(float(summary["seconds"]))
            for step, seconds in step_seconds(Path(summary["log_path"])).items():
                steps.setdefault(step, []).append(seconds)
    loads.append(os.getloadavg()[0])

    overheads = [wall - fit for wall, fit in zip(walls, fits, strict=True)]
    # The cold first run is printed apart; the rest are what a user's runs cost.
    warm = overheads[1:] or overheads
    rows = [
        median_row(f"`inv train --preset {args.preset}`: wall", walls),
        median_row("  the fit (`train_seconds`)", fits),
        median_row("  **overhead over the fit** (wall - fit, the runs after the first)", warm),
        median_row(
            "  `inv` before and after the pipeline (wall - pipeline)",
            [wall - pipeline for wall, pipeline in zip(walls, pipelines, strict=True)],
        ),
    ]
    rows += [median_row(f"  step `{step}`, start to finish", steps[step]) for step in STEPS]

    with tempfile.TemporaryDirectory(prefix="bench-floor-") as scratch:
        env = {**base_env, "HOME": scratch}
        program = Path(scratch, "noop.py")
        program.write_text(f"ROOT = {str(Path(scratch, 'root'))!r}\n" + NOOP_PIPELINE)
        bare = repeat(args.runs, lambda: timed([python, "-c", "pass"], cwd=checkout, env=env)[0])
        invoke = repeat(
            args.runs, lambda: timed([python, "-m", "invoke", "--list"], cwd=checkout, env=env)[0]
        )
        noop = repeat(args.runs, lambda: timed([python, str(program)], cwd=checkout, env=env)[0])
        forest = repeat(
            args.runs,
            lambda: timed(
                [python, "-c", "from sklearn.ensemble import RandomForestClassifier"],
                cwd=checkout,
                env=env,
            )[0],
        )
    loads.append(os.getloadavg()[0])
    # The pipeline runs inside the `inv` process: one interpreter start, not two.
    invoke = [seconds - statistics.median(bare) for seconds in invoke]
    sklearn = [seconds - statistics.median(bare) for seconds in forest]
    floor = statistics.median(invoke) + statistics.median(noop) + statistics.median(sklearn)
    rows += [
        median_row("a bare interpreter (`python -c pass`)", bare),
        median_row("floor: invoke and `tasks.py` (`inv --list`, over a bare interpreter)", invoke),
        median_row("floor: a 3-step pipeline of the same shape doing nothing, via kfp.local", noop),
        median_row("floor: importing scikit-learn's forest (over a bare interpreter)", sklearn),
        ("**floor: the sum, before any data is read, saved or scored**", f"{floor:.2f}"),
        (
            "**the run's own work: overhead minus floor**",
            f"**{statistics.median(warm) - floor:.2f}**",
        ),
        ("target for the run's own work", f"{TARGET_SECONDS:.2f}"),
        ("the first run's overhead (reads MNIST, keeps the dataset)", f"{overheads[0]:.2f}"),
    ]

    command = f"scripts/bench_overhead.py --mnist-dir DIR --runs {args.runs} --preset {args.preset}"
    print(f"Command: `{Path(python).name} {command}`; checkout: {checkout}")
    print(
        f"Machine: {os.cpu_count()} cores; load average (1 min) at start / after the runs / "
        f"after the floor: {' / '.join(f'{load:.1f}' for load in loads)}"
    )
    print(f"Medians of {args.runs} runs, each a fresh process timed from outside, in seconds.\n")
    print("| what | seconds |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
