"""Measure the package's shape: duplication, largest module and function, start time.

Usage:
    python scripts/bench_shape.py [--checkout DIR] [--runs 7]

Prints, for the tree at `--checkout` (default: this repository): the number of
duplicated block pairs the `duplicates` command reports (when it is on PATH),
the largest module of `hello_kubeflow/` (lines), the largest function or method
(lines, decorators excluded), and the median wall time of `inv --list` over
`--runs` runs, with the load average beside it (the machine may be shared).
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def duplicate_pairs(checkout: Path) -> str:
    """The first line of `duplicates` over the checkout, or why it was not run."""
    tool = shutil.which("duplicates")
    if tool is None:
        return "duplicates: not on PATH"
    done = subprocess.run(
        [tool, "--seconds", "60"], cwd=checkout, capture_output=True, text=True, timeout=120
    )
    return done.stdout.splitlines()[0] if done.stdout else done.stderr.strip()


def largest(checkout: Path) -> tuple[tuple[int, str], tuple[int, str]]:
    """(lines, module) of the largest module and (lines, name) of the largest function."""
    modules: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    package = checkout / "hello_kubeflow"
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(checkout))
        modules.append((len(text.splitlines()), name))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                functions.append((size, f"{name}:{node.name}"))
    return max(modules), max(functions)


def inv_list_seconds(checkout: Path, runs: int) -> list[float]:
    """Wall seconds of `python -m invoke --list` in the checkout, one figure a run."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(checkout), "HOME": os.environ["HOME"]}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "invoke", "--list"],
            cwd=checkout,
            env=env,
            capture_output=True,
            check=True,
            timeout=120,
        )
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=REPO)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: expected at least 1 run")
    checkout = args.checkout.resolve()
    print(f"checkout: {checkout}")
    print(f"duplicates: {duplicate_pairs(checkout)}")
    (module_lines, module), (function_lines, function) = largest(checkout)
    print(f"largest module: {module} ({module_lines} lines)")
    print(f"largest function: {function} ({function_lines} lines)")
    times = inv_list_seconds(checkout, args.runs)
    load = os.getloadavg()
    print(
        f"inv --list: median {statistics.median(times):.3f} s over {args.runs} runs "
        f"(min {min(times):.3f}, max {max(times):.3f}); "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
