"""Time everyday commands as a user runs them: query, no server, offline, a run.

Usage:
    python scripts/bench_everyday.py --model MODEL_DIR --mnist-dir MNIST_DIR [--checkout DIR]

Each figure is a whole `inv` process timed from outside (wall seconds), run in
`--checkout` (default: this repository; another commit's tree, e.g. from
`git archive`, measures "before"). The model server is always this checkout's,
started once on a free 127.0.0.1 port. Nothing leaves the machine: the offline
case uses mirrors under `.invalid`, a name that never resolves.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OFFLINE_MIRRORS = "http://mnist-a.invalid/,http://mnist-b.invalid/,http://mnist-c.invalid/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed_inv(checkout: Path, args: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    """Run `python -m invoke ARGS` in `checkout`; return (wall seconds, stdout, stderr)."""
    full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(checkout), **env}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=checkout,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return time.perf_counter() - started, done.stdout, done.stderr


def start_server(model: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "HK_MODEL_DIR": str(model),
        "HK_SERVE_PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "hello_kubeflow.serving"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health/ping", timeout=1):
                return server, url
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the model server did not start")


def folder_megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained model directory")
    parser.add_argument("--mnist-dir", type=Path, required=True, help="full MNIST")
    parser.add_argument("--checkout", type=Path, default=REPO, help="the tree to time")
    parser.add_argument("--runs", type=int, default=5, help="query runs for the median")
    parser.add_argument("--train", action="store_true", help="also time `inv train --json`")
    parser.add_argument("--preset", default="book", help="preset of the timed run")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    rows: list[tuple[str, str]] = []
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)

    server, url = start_server(args.model.resolve())
    cache = tempfile.TemporaryDirectory(prefix="bench-cache-")
    try:
        env = {
            "HK_QUERY_URL": url,
            "MNIST_DIR": str(args.mnist_dir),
            "HK_CACHE_DIR": cache.name,  # where the first query records the verified files
        }
        seconds, out, err = timed_inv(checkout, ["query", "--index", "0", "--json"], env)
        rows.append(
            ("`inv query --index 0`, the first (verifies the test files)", f"{seconds:.2f}")
        )
        times = []
        for _ in range(args.runs):
            seconds, out, err = timed_inv(checkout, ["query", "--index", "0", "--json"], env)
            if '"sanity": "ok' not in out:
                raise SystemExit(f"query failed:\n{err[-2000:]}")
            times.append(seconds)
        rows.append(
            (
                f"`inv query --index 0`, median of the next {args.runs} (server up, MNIST_DIR)",
                f"{statistics.median(times):.2f} (min {min(times):.2f}, max {max(times):.2f}; "
                f"load {os.getloadavg()[0]:.2f})",
            )
        )
        with tempfile.TemporaryDirectory() as scratch:
            offline = {
                "HK_QUERY_URL": url,
                "HK_CACHE_DIR": scratch,
                "HK_MNIST_MIRRORS": OFFLINE_MIRRORS,
            }
            seconds, out, err = timed_inv(checkout, ["query", "--index", "0", "--json"], offline)
            retries = sum("Retrying" in line or "next try" in line for line in err.splitlines())
            rows.append(
                (
                    "`inv query` offline: no MNIST, 3 mirrors that do not resolve",
                    f"{seconds:.2f} ({retries} retry lines on stderr)",
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        cache.cleanup()

    nothing = f"http://127.0.0.1:{free_port()}"
    seconds, _, err = timed_inv(
        checkout,
        ["query", "--index", "0"],
        {"HK_QUERY_URL": nothing, "MNIST_DIR": str(args.mnist_dir)},
    )
    rows.append(("`inv query` with no server at a local URL (exit 1)", f"{seconds:.2f}"))

    if args.train:
        with tempfile.TemporaryDirectory() as scratch:
            env = {"MNIST_DIR": str(args.mnist_dir), "HK_OUTPUT_DIR": scratch, "HOME": scratch}
            load = os.getloadavg()[0]
            seconds, out, err = timed_inv(
                checkout, ["train", "--preset", args.preset, "--json"], env
            )
            summary = json.loads(out.strip().splitlines()[-1])
            metadata = json.loads((Path(summary["model_path"]) / "metadata.json").read_text())
            fit = float(metadata["train_seconds"])
            run_dir = Path(summary["model_path"]).parents[1]
            dataset = run_dir / "load-data" / "dataset"
            rows += [
                (
                    f"`inv train --preset {args.preset}` wall (load avg {load:.1f} at start)",
                    f"{seconds:.2f}",
                ),
                ("  of which the fit", f"{fit:.2f}"),
                ("  pipeline overhead over the fit", f"{seconds - fit:.2f}"),
                ("  run folder on disk, MB", f"{folder_megabytes(run_dir):.1f}"),
                ("  dataset artifact, MB", f"{dataset.stat().st_size / 1e6:.1f}"),
            ]

    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"checkout: {checkout}")
    print("| what | seconds (or MB) |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
