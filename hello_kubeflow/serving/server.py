"""Run the model server under uvicorn (`run_server`) or in a thread (`running_server`)."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from hello_kubeflow.console import configure_logging, sigterm_interrupts
from hello_kubeflow.errors import ServingError
from hello_kubeflow.model.artifact import LoadedModel, latest_model_path, load_model
from hello_kubeflow.serving.app import create_app
from hello_kubeflow.serving.bodies import stop_helper
from hello_kubeflow.serving.deadlines import DrainingServer, deadline_protocol
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

GRACEFUL_STOP_SECONDS = 5
"""Requests still arriving get this long after Ctrl-C or SIGTERM, then a 503."""
CANCEL_AFTER_SECONDS = GRACEFUL_STOP_SECONDS + 1
"""Answers still being computed then are cancelled (uvicorn's plain 500) this long after."""
STARTUP_TIMEOUT_SECONDS = 30.0
"""How long `running_server` waits for the server thread to listen."""
WORKER_STOP_SECONDS = CANCEL_AFTER_SECONDS + 5.0
BACKLOG = 2048


@dataclass(frozen=True)
class RunningServer:
    """A server listening in the background: base `url`, `port` (the one 0 picked), `model_dir`."""

    url: str
    port: int
    model_dir: Path


def resolve_model_dir(settings: Settings, model: str | Path = "") -> Path:
    """Which model to serve: `model` if given, else `HK_MODEL_DIR`, else the latest trained.

    Raises:
        ModelError: when nothing was given and no model has been trained yet.
    """
    if model:
        return Path(model).expanduser()
    return settings.model_dir or latest_model_path(settings.output_dir)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free port).

    Raises:
        ServingError: the port is taken or the address cannot be used, with the fix.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServingError(
                f"port {port} on {host} is already in use (another `inv serve`?): stop that "
                "server, or choose another port with --port or HK_SERVE_PORT"
            ) from None
        raise ServingError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): check --host or "
            "HK_SERVE_HOST (e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
        ) from None
    sock.set_inheritable(True)
    return sock


def run_server(settings: Settings, model_dir: Path) -> None:
    """Serve `model_dir` as `settings` say (`serve_*`, model name, limits) until Ctrl-C or SIGTERM.

    Raises:
        ModelError: the model is missing or not a model (before anything listens).
        ServingError: the port is taken, or a worker died.
    """
    app_args = (model_dir, settings.model_name, settings.max_body_bytes, settings.request_timeout)
    server = _server(*app_args)  # proves the model answers before we listen
    sock = bind_socket(settings.serve_host, settings.serve_port)
    log.info(
        "serving %s (model %s) at http://%s:%d with %d worker(s); Ctrl-C stops",
        model_dir,
        settings.model_name,
        settings.serve_host,
        sock.getsockname()[1],
        settings.serve_workers,
    )
    try:
        with sigterm_interrupts():
            if settings.serve_workers <= 1:
                server.run(sockets=[sock])
            else:
                del server
                _supervise(settings.serve_workers, sock, app_args)
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal once in-flight requests are done
    finally:
        sock.close()
        stop_helper()
    log.info("server stopped")


@contextmanager
def running_server(
    settings: Settings, model_dir: Path, *, model: LoadedModel | None = None
) -> Iterator[RunningServer]:
    """Serve `model_dir` (or the loaded `model`) in a background thread during a `with` block.

    Yields:
        The running server; leaving the block stops it and joins its thread.

    Raises:
        ModelError, ServingError: as for `run_server`, or when it does not start.
    """
    server = _server(
        model_dir, settings.model_name, settings.max_body_bytes, settings.request_timeout, model
    )
    sock = bind_socket(settings.serve_host, settings.serve_port)
    host = f"[{settings.serve_host}]" if ":" in settings.serve_host else settings.serve_host
    port = sock.getsockname()[1]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="model-server", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(
                    f"the model server on port {port} did not start; see the log above"
                )
            time.sleep(0.01)
        yield RunningServer(f"http://{host}:{port}", port, model_dir)
    finally:
        server.should_exit = True
        thread.join(WORKER_STOP_SECONDS)
        sock.close()
        stop_helper()


def _server(
    model_dir: Path,
    model_name: str,
    max_body_bytes: int,
    request_timeout: float,
    model: LoadedModel | None = None,
) -> DrainingServer:
    """The uvicorn server for the model, loaded from `model_dir` unless given."""
    app = create_app(
        model if model is not None else load_model(model_dir),
        model_name=model_name,
        max_body_bytes=max_body_bytes,
    )
    # log_config=None: our logging applies; no access log, which costs more than a request.
    config = uvicorn.Config(
        app,
        http=deadline_protocol(request_timeout, GRACEFUL_STOP_SECONDS),
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=CANCEL_AFTER_SECONDS,
        backlog=BACKLOG,
    )
    return DrainingServer(config)


def _supervise(count: int, sock: socket.socket, app_args: tuple[Path, str, int, float]) -> None:
    """Run `count` spawned workers on one socket; stop them all on a signal."""
    context = multiprocessing.get_context("spawn")
    workers = [
        # Not daemonic: a worker starts a helper process for large bodies (bodies.py).
        context.Process(target=_worker, args=(sock, app_args), name=f"model-server-{i}")
        for i in range(count)
    ]
    for worker in workers:
        worker.start()
    try:
        while all(w.is_alive() for w in workers):
            time.sleep(0.2)
        dead = next(w for w in workers if not w.is_alive())
        raise ServingError(
            f"worker {dead.name} exited (code {dead.exitcode}); see its log above. All "
            "workers were stopped."
        )
    finally:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                worker.terminate()  # SIGTERM: each worker drains (see DrainingServer)
        # Closed in every process, the socket refuses new connections at once.
        sock.close()
        for worker in workers:
            worker.join(WORKER_STOP_SECONDS)
            if worker.is_alive():
                worker.kill()
                worker.join()


def _worker(sock: socket.socket, app_args: tuple[Path, str, int, float]) -> None:
    """One worker process: load the model, serve on the inherited socket."""
    configure_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent relays Ctrl-C as SIGTERM
    server = _server(*app_args)
    # uvicorn re-raises its SIGTERM: as KeyboardInterrupt, the worker still stops its helper.
    with sigterm_interrupts(), suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    stop_helper()
