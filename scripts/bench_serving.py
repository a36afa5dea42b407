"""Serving benchmark: latency and throughput of one-image requests on loopback.

Compares, on the same trained forest and one worker process each:

  (a) this project's server (`python -m hello_kubeflow.serving`, uvicorn + ONNX Runtime);
  (b) the original stack: the real Seldon Core 1.x wrapper (`seldon-core-microservice`,
      gunicorn + Flask, in its own venv made by scripts/seldon_venv.sh) serving the
      forest through scikit-learn `predict_proba`, like the book's `SkMnist` class;
  (c) that wrapper serving this project's `MnistClassifier` (server cost vs model cost);
  (d) in-process floors: scikit-learn `predict_proba` and the ONNX Runtime fast path.

The client is this process: one keep-alive connection (the wrapper's gunicorn sync
worker closes it after each answer, so its clients reconnect, as they do in real
life), one MNIST test image per request in the Seldon format with names X1..X784,
bounded by --requests and --seconds per target. Every answer must pass the query's
sanity check.

Usage:
    python scripts/bench_serving.py [--model DIR] [--requests 2000] [--seconds 20] [--write]
    python scripts/bench_serving.py --against OTHER_CHECKOUT [--rounds 4] [--model DIR] [--write]
    python scripts/bench_serving.py --fairness [--against OTHER] [--rounds 3] [--seconds 10]

--against runs only (a), alternating this tree's server with another checkout's
(e.g. main), round by round, so both see the same machine load: on a shared
machine the absolute figures move with the load, the A/B does not.

--fairness measures (a) with its default worker count while another client
loops the largest batch the body limit accepts (MNIST test images rounded to 0/1,
the densest valid message): the one-image client's p50 and p99 idle, then loaded,
in each round, beside the load average (with --against, the other checkout's
server too, alternated). Bounded by --seconds and --requests per phase.

--model defaults to the latest `inv train` model, else a "book" forest trained once
into the cache. --write replaces the section of docs/benchmarks.md that holds these
figures: the forest's, the neural network's (`inv train --model mlp`'s model), the
A/B's or the --fairness one's.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import multiprocessing
import multiprocessing.synchronize
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks_doc import (  # noqa: E402
    DOCS,
    SERVING_AB,
    SERVING_FAIRNESS,
    SERVING_FOREST,
    SERVING_MLP,
    write_section,
)

from hello_kubeflow.data.mnist import load_mnist, scale_pixels  # noqa: E402
from hello_kubeflow.query.answers import check_answer, seldon_payload  # noqa: E402
from hello_kubeflow.settings import Settings, load_settings  # noqa: E402

FAIRNESS_P50_RATIO = 5.0  # the target: loaded p50 within 5x of idle...
FAIRNESS_P99_MS = 50.0  # ...and loaded p99 under 50 ms
PACE_SECONDS = 0.01  # the one-image client's requests start 10 ms apart
HOG_SECONDS = 300.0  # the looping client stops by then whatever happens
START_SECONDS = 120.0
HTTP_TIMEOUT = 30.0
WARMUP = 50
IMAGES = 200

SKMNIST = '''
import os
import joblib


class SkMnist:
    """The book's model class: the joblib forest, predict_proba per request."""

    def __init__(self):
        self.class_names = ["class:{}".format(i) for i in range(10)]
        self.clf = joblib.load(os.environ["SK_MODEL"])

    def predict(self, X, feature_names):
        return self.clf.predict_proba(X)
'''


@dataclass
class Result:
    name: str
    latencies: list[float]
    seconds: float
    note: str = ""

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="", help="model directory (default: latest inv train)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per target (max)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per target (max)")
    parser.add_argument(
        "--write", action="store_true", help="write the table into docs/benchmarks.md"
    )
    parser.add_argument("--against", default="", help="another checkout: A/B of (a) only")
    parser.add_argument("--rounds", type=int, default=4, help="A/B rounds (with --against)")
    parser.add_argument(
        "--fairness", action="store_true", help="one-image latency while a client loops batches"
    )
    args = parser.parse_args()

    settings = load_settings()
    model_dir = _model_dir(settings, args.model)
    print(f"model: {model_dir}", file=sys.stderr)
    data = load_mnist(settings)
    pixels = scale_pixels(data.x_test[:IMAGES])
    bodies = [seldon_payload(pixels[i : i + 1]) for i in range(IMAGES)]

    if args.fairness:
        _fairness(model_dir, bodies, scale_pixels(data.x_test), settings.max_body_bytes, args)
        return
    if args.against:
        _a_b(Path(args.against).resolve(), model_dir, bodies, args)
        return

    results: list[Result] = []
    with _process(
        [
            sys.executable,
            "-m",
            "hello_kubeflow.serving",
            "--model",
            str(model_dir),
            "--workers",
            "1",
        ],
        port_flag="--port",
        env={"PYTHONPATH": str(REPO)},
    ) as port:
        results.append(_drive("(a) this server: uvicorn + ONNX Runtime", port, bodies, args))

    venv, why_not = _seldon_venv()
    if venv is None:
        for name in (
            "(b) seldon-core wrapper + sklearn",
            "(c) seldon-core wrapper + MnistClassifier",
        ):
            results.append(Result(name, [], 0.0, f"not run: {why_not}"))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "SkMnist.py").write_text(SKMNIST)
            wrapper = [str(venv / "bin" / "seldon-core-microservice")]
            common = ["--grpc-workers", "0", "--workers", "1", "--threads", "1"]
            with _process(
                [*wrapper, "SkMnist", *common],
                port_flag="--http-port",
                metrics=True,
                cwd=scratch,
                env={"SK_MODEL": str(model_dir / "model.joblib")},
            ) as port:
                results.append(
                    _drive(
                        "(b) seldon-core 1.17 wrapper + sklearn predict_proba", port, bodies, args
                    )
                )
            with _process(
                [*wrapper, "hello_kubeflow.serving.seldon_model.MnistClassifier", *common],
                port_flag="--http-port",
                metrics=True,
                cwd=scratch,
                env={"PYTHONPATH": str(REPO), "HK_MODEL_DIR": str(model_dir)},
            ) as port:
                results.append(
                    _drive("(c) seldon-core 1.17 wrapper + MnistClassifier", port, bodies, args)
                )

    from hello_kubeflow.model.train import load_model

    model = load_model(model_dir)
    one = pixels[:1]
    results.append(
        _in_process("(d) in-process sklearn predict_proba", model.sklearn_predict_proba, one, args)
    )
    results.append(
        _in_process("(d) in-process fast path (ONNX Runtime)", model.predict_proba, one, args)
    )

    table = _table(results)
    print(table)
    if args.write:
        _write_docs(table, results, model_dir, args)
        print(f"written to {DOCS}", file=sys.stderr)


def _serve_tree(
    tree: Path, model_dir: Path, workers: tuple[str, ...] = ("--workers", "1")
) -> AbstractContextManager[int]:
    """Target (a) run from the checkout `tree` (its package first on the path)."""
    command = [sys.executable, "-m", "hello_kubeflow.serving", "--model", str(model_dir)]
    return _process(
        [*command, *workers],
        port_flag="--port",
        cwd=tempfile.gettempdir(),  # neither checkout's .env
        env={"PYTHONPATH": str(tree)},
    )


def _a_b(other: Path, model_dir: Path, bodies: list[bytes], args: argparse.Namespace) -> None:
    """(a) from this tree and from `other`, alternated round by round under the same load."""
    rows = [
        "| round | server | p50 ms | p99 ms | requests/s | n | load average (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    by_tree: dict[str, list[Result]] = {}
    for round_ in range(1, args.rounds + 1):
        for label, tree in (("other", other), ("this", REPO)):
            name = f"{tree.name} ({label})"
            load = os.getloadavg()[0]
            with _serve_tree(tree, model_dir) as port:
                result = _drive(name, port, bodies, args)
            by_tree.setdefault(name, []).append(result)
            rows.append(
                f"| {round_} | {name} | {result.percentile(50):.2f} | "
                f"{result.percentile(99):.2f} | {result.rps:,.0f} | {len(result.latencies):,} | "
                f"{load:.1f} |"
            )
    rows.append("")
    for name, results in by_tree.items():
        p50 = float(np.median([r.percentile(50) for r in results]))
        rps = float(np.median([r.rps for r in results]))
        rows.append(
            f"Median of {len(results)} rounds, {name}: p50 {p50:.2f} ms, {rps:,.0f} requests/s."
        )
    table = "\n".join(rows)
    print(table)
    if args.write:
        metadata = json.loads((model_dir / "metadata.json").read_text())
        section = (
            f"{SERVING_AB}\n\n"
            f"Target (a) only, this tree's server and `{other}`'s alternated round by round, "
            "so both see the same load on the shared machine. Same protocol as above; "
            f"preset `{metadata.get('preset')}`, {metadata.get('n_estimators')} trees. "
            "Under load the absolute figures of the section above (an idle machine) are "
            "out of reach for both servers: compare the two columns, not the sections.\n\n"
            f"Command: `MNIST_DIR=... python scripts/bench_serving.py --against {other} "
            f"--rounds {args.rounds} --model DIR --write`\n"
            f"Machine: {_machine()}.\nDate: {datetime.date.today().isoformat()}.\n\n" + table + "\n"
        )
        write_section(section)
        print(f"written to {DOCS}", file=sys.stderr)


def _largest_batch(pixels: np.ndarray, limit: int) -> tuple[bytes, int]:
    """The Seldon body of the most images that fit `limit`: pixels rounded to 0/1.

    One digit and a comma per value is the densest valid message, so it holds the
    most values (the most decoding work) a body under the limit can.
    """
    digits = np.round(pixels).astype(np.uint8).tolist()  # ints: "0", not "0.0"
    one, two = (len(seldon_payload(digits[:n])) for n in (1, 2))
    count = min(len(digits), 1 + (limit - one) // (two - one))
    while len(body := seldon_payload(digits[:count])) > limit:
        count -= 1
    return body, count


def _hog(
    port: int,
    body: bytes,
    rows: int,
    stop: multiprocessing.synchronize.Event,
    answers: multiprocessing.Queue[int],
) -> None:
    """Loop `body` until `stop` is set (or HOG_SECONDS pass); put the answer count on `answers`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    headers = {"Content-Type": "application/json"}
    count = 0
    deadline = time.monotonic() + HOG_SECONDS
    while not stop.is_set() and time.monotonic() < deadline:
        connection.request("POST", "/api/v1.0/predictions", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise SystemExit(f"the looping client got HTTP {response.status}: {answer[:300]!r}")
        if count == 0:
            check_answer(json.loads(answer), "seldon", rows=rows)
        count += 1
    answers.put(count)


def _loaded(
    name: str, port: int, bodies: list[bytes], batch: tuple[bytes, int], args: argparse.Namespace
) -> tuple[Result, int, float]:
    """`_drive` while another process loops `batch`; with its answer count and seconds."""
    answers: multiprocessing.Queue[int] = multiprocessing.Queue()
    stop = multiprocessing.Event()
    started = time.monotonic()
    hog = multiprocessing.Process(target=_hog, args=(port, *batch, stop, answers), daemon=True)
    hog.start()
    try:
        time.sleep(1.0)  # its first batch is on the wire before the measure starts
        result = _drive(name, port, bodies, args, PACE_SECONDS)
        stop.set()
        count = answers.get(timeout=HTTP_TIMEOUT)
        hog.join(HTTP_TIMEOUT)
        return result, count, time.monotonic() - started
    finally:
        if hog.is_alive():
            hog.kill()


def _fairness(
    model_dir: Path,
    bodies: list[bytes],
    pixels: np.ndarray,
    limit: int,
    args: argparse.Namespace,
) -> None:
    """One-image latency idle, then while another client loops the largest batch."""
    batch = _largest_batch(pixels, limit)
    trees = [("other", Path(args.against).resolve())] if args.against else []
    trees.append(("this", REPO))
    rows = [
        "| round | server | load avg idle / loaded | idle p50 ms | idle p99 ms | loaded p50 ms "
        "| loaded p99 ms | loaded max ms | p50 loaded / idle | batches answered (per s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    met: dict[str, list[bool]] = {}
    for round_ in range(1, args.rounds + 1):
        for label, tree in trees:
            name = f"{tree.name} ({label})"
            with _serve_tree(tree, model_dir, workers=()) as port:
                load_idle = os.getloadavg()[0]
                idle = _drive(f"{name} idle", port, bodies, args, PACE_SECONDS)
                load_loaded = os.getloadavg()[0]
                loaded, batches, seconds = _loaded(f"{name} loaded", port, bodies, batch, args)
            ratio = loaded.percentile(50) / idle.percentile(50)
            met.setdefault(name, []).append(
                ratio <= FAIRNESS_P50_RATIO and loaded.percentile(99) < FAIRNESS_P99_MS
            )
            rows.append(
                f"| {round_} | {name} | {load_idle:.1f} / {load_loaded:.1f} | "
                f"{idle.percentile(50):.2f} | {idle.percentile(99):.2f} | "
                f"{loaded.percentile(50):.2f} | {loaded.percentile(99):.2f} | "
                f"{loaded.percentile(100):.0f} | {ratio:.1f}x | "
                f"{batches} ({batches / seconds:.1f}) |"
            )
    rows.append("")
    for name, rounds in met.items():
        rows.append(
            f"{name}: target (loaded p50 within {FAIRNESS_P50_RATIO:g}x of idle, loaded p99 "
            f"under {FAIRNESS_P99_MS:g} ms) met in {sum(rounds)} of {len(rounds)} rounds."
        )
    table = "\n".join(rows)
    print(table)
    if args.write:
        metadata = json.loads((model_dir / "metadata.json").read_text())
        other = f"`{trees[0][1].name}` (`--against DIR`) and " if args.against else ""
        section = (
            f"{SERVING_FAIRNESS}\n\n"
            f"Target (a) from {other}this tree, each with its default worker count, "
            f"alternated round by round; preset `{metadata.get('preset')}`, "
            f"{metadata.get('n_estimators')} trees. One client sends one MNIST test image "
            f"per request, a request every {PACE_SECONDS * 1000:g} ms (so the latencies "
            "sample the server evenly in time, stalls included), first alone (idle), then "
            "while another process loops the largest batch under the "
            f"{limit:,}-byte body limit: {batch[1]:,} images rounded to 0/1 "
            f"({len(batch[0]):,} bytes, the densest valid message, so the most values to "
            "decode), one after another on one connection. Idle and loaded are measured on "
            "the same server, one after the other, with the load average of the shared "
            "machine at the start of each.\n\n"
            f"Command: `MNIST_DIR=... python scripts/bench_serving.py --fairness"
            f"{' --against DIR' if args.against else ''} --rounds {args.rounds} "
            f"--seconds {args.seconds:g} --requests {args.requests} --model DIR --write`\n"
            f"Machine: {_machine()}.\nDate: {datetime.date.today().isoformat()}.\n\n" + table + "\n"
        )
        write_section(section)
        print(f"written to {DOCS}", file=sys.stderr)


def _model_dir(settings: Settings, given: str) -> Path:
    if given:
        return Path(given).resolve()
    from hello_kubeflow.errors import ModelError
    from hello_kubeflow.model.artifact import latest_model_path

    try:
        return latest_model_path(settings.output_dir).resolve()
    except ModelError:
        pass
    from hello_kubeflow.model.train import build_metadata, save_model, train_model

    target = settings.cache_dir / "bench-model-book"
    if (target / "metadata.json").is_file():
        return target
    print("no trained model: training the book preset (30 trees, 35k images) once", file=sys.stderr)
    data = load_mnist(settings)
    result = train_model(scale_pixels(data.x_train), data.y_train, preset="book", seed=42)
    return save_model(target, result, metadata=build_metadata(result, data_source=data.source))


def _seldon_venv() -> tuple[Path | None, str]:
    import sklearn

    made = subprocess.run(
        ["bash", str(REPO / "scripts" / "seldon_venv.sh")],
        env={**os.environ, "SKLEARN_VERSION": sklearn.__version__},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if made.returncode != 0:
        return None, (made.stderr.strip().splitlines() or ["seldon_venv.sh failed"])[-1]
    return Path(made.stdout.strip().splitlines()[-1]), ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _process(
    command: list[str],
    *,
    port_flag: str,
    metrics: bool = False,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[int]:
    """Start a server on a free port, wait for /health/ping, stop its process group after."""
    port = _free_port()
    command = [*command, port_flag, str(port)]
    if metrics:
        command += ["--metrics-port", str(_free_port())]
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited:\n{Path(log.name).read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health/ping")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{command[0]} did not start:\n{Path(log.name).read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        os.unlink(log.name)


def _drive(
    name: str, port: int, bodies: list[bytes], args: argparse.Namespace, interval: float = 0.0
) -> Result:
    """One client, one image per request, sequential; every answer sanity-checked once.

    With `interval`, a request starts every `interval` seconds (at once if the last
    answer came later), so the latencies sample the server's state evenly in time
    rather than mostly while it is quick.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    headers = {"Content-Type": "application/json"}

    def once(body: bytes) -> bytes:
        connection.request("POST", "/api/v1.0/predictions", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise SystemExit(f"{name}: HTTP {response.status}: {answer[:300]!r}")
        return answer

    for i in range(WARMUP):
        check_answer(json.loads(once(bodies[i % len(bodies)])), "seldon", rows=1)
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + args.seconds
    while len(latencies) < args.requests and time.perf_counter() < stop_at:
        body = bodies[len(latencies) % len(bodies)]
        time.sleep(max(0.0, started + len(latencies) * interval - time.perf_counter()))
        t0 = time.perf_counter()
        once(body)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    connection.close()
    print(f"{name}: {len(latencies)} requests", file=sys.stderr)
    return Result(name, latencies, seconds)


def _in_process(
    name: str,
    predict: Callable[[np.ndarray], np.ndarray],
    one: np.ndarray,
    args: argparse.Namespace,
) -> Result:
    for _ in range(WARMUP):
        predict(one)
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + args.seconds
    while len(latencies) < args.requests and time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        predict(one)
        latencies.append(time.perf_counter() - t0)
    return Result(name, latencies, time.perf_counter() - started)


def _table(results: list[Result]) -> str:
    rows = [
        "| stack (1 worker process, one image per request) | p50 ms | p99 ms | requests/s | n |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if not r.latencies:
            rows.append(f"| {r.name} | - | - | - | {r.note} |")
            continue
        p50, p99 = r.percentile(50), r.percentile(99)
        rows.append(f"| {r.name} | {p50:.2f} | {p99:.2f} | {r.rps:,.0f} | {len(r.latencies):,} |")
    ours = results[0]
    original = next((r for r in results if r.name.startswith("(b)") and r.latencies), None)
    if original is not None:
        rows.append("")
        rows.append(
            f"This server: {ours.rps / original.rps:.1f}x the throughput of the original stack "
            "(b), "
            f"p50 {ours.percentile(50):.2f} ms vs {original.percentile(50):.2f} ms."
        )
    return "\n".join(rows)


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, load average "
        f"{load:.1f} at the end of the run (other work on the machine makes the figures noisier)"
    )


def _write_docs(
    table: str, results: list[Result], model_dir: Path, args: argparse.Namespace
) -> None:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    kind = metadata.get("model", "forest")
    heading = SERVING_MLP if kind == "mlp" else SERVING_FOREST
    if kind == "mlp":
        hidden = metadata.get("parameters", {}).get("hidden_layer_sizes")
        what = f"network: preset `{metadata.get('preset')}`, hidden layers {hidden}"
    else:
        what = f"forest: preset `{metadata.get('preset')}`, {metadata.get('n_estimators')} trees"
    command = "MNIST_DIR=... python scripts/bench_serving.py --write"
    if args.model:
        command += " --model DIR"
    if args.requests != 2000 or args.seconds != 20.0:
        command += f" --requests {args.requests} --seconds {args.seconds:g}"
    section = (
        textwrap.dedent(
            f"""\
        {heading}

        One MNIST test image per request (Seldon JSON with names X1..X784), one client
        on loopback, sequential requests on a keep-alive connection (the Seldon
        wrapper's gunicorn sync worker closes it after each answer, so its client
        reconnects, as real clients do), one worker process per server, every answer
        sanity-checked. Same {what},
        trained on {metadata.get("train_size"):,} images.
        (b) is the book's stack: `seldon-core-microservice` 1.17.1 (gunicorn + Flask) with
        a `SkMnist` class calling scikit-learn `predict_proba`; (c) is that wrapper
        running this project's `MnistClassifier` (ONNX Runtime), separating server cost
        from model cost; (d) are in-process floors.

        Command: `{command}` (`--model` defaults to the latest `inv train` model; the
        Seldon venv comes from `scripts/seldon_venv.sh`, made on first use).
        Machine: {_machine()}.
        Date: {datetime.date.today().isoformat()}.

        """
        )
        + table
        + "\n"
    )
    write_section(section)


if __name__ == "__main__":
    main()
