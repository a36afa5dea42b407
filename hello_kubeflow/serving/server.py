"""Run the model server under uvicorn: load the model first, then listen; stop gracefully.

`run_server` is what `inv serve` calls: it loads the model (a missing or broken
artifact is a clear `ModelError` before anything listens), binds the socket (a
busy port is a clear `ServingError`), and serves until Ctrl-C or SIGTERM. Stopping
drains: the connections already waiting are accepted, the socket is closed (new
connections are refused at once), every request that has arrived is answered, and
a body still arriving after `GRACEFUL_STOP_SECONDS` gets a 503 (`deadlines`). With
several workers, each is a spawned process that loads its own copy of the model
and accepts on the shared socket, which the parent closes as it stops them.
`running_server` serves in a background thread, for `inv demo` and tests.
"""

from __future__ import annotations

import asyncio
import errno
import functools
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
from typing import Any

import uvicorn

from hello_kubeflow.console import sigterm_interrupts
from hello_kubeflow.errors import ServingError
from hello_kubeflow.serving.app import create_app
from hello_kubeflow.serving.bodies import stop_helper
from hello_kubeflow.serving.deadlines import deadline_protocol
from hello_kubeflow.serving.describe import ServableModel
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
    """A server listening in the background.

    Attributes:
        url: its base URL, e.g. `http://127.0.0.1:41234`.
        port: the port it listens on (useful when port 0 picked a free one).
        model_dir: the model it serves.
    """

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
    if settings.model_dir is not None:
        return settings.model_dir
    from hello_kubeflow.model.artifact import latest_model_path

    return latest_model_path(settings.output_dir)


def load_for_serving(model_dir: Path) -> Any:
    """Load the model artifact in `model_dir` (`hello_kubeflow.model.train.load_model`).

    Raises:
        ModelError: the directory is missing or holds no valid model.
    """
    from hello_kubeflow.model.train import load_model

    return load_model(model_dir)


def build_app(model: ServableModel, settings: Settings) -> Any:
    """The ASGI app for `model` with the settings' name and body limit."""
    return create_app(model, model_name=settings.model_name, max_body_bytes=settings.max_body_bytes)


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
    """Serve `model_dir` on `settings.serve_host:serve_port` until Ctrl-C or SIGTERM.

    Args:
        settings: host, port, workers, body limit and model name.
        model_dir: the model artifact directory.

    Raises:
        ModelError: the model is missing or not a model (before anything listens).
        ServingError: the port is taken, or a worker died.
    """
    model = load_for_serving(model_dir)
    app = build_app(model, settings)  # proves the model answers before we listen
    sock = bind_socket(settings.serve_host, settings.serve_port)
    port = sock.getsockname()[1]
    log.info(
        "serving %s (model %s) at http://%s:%d with %d worker(s); Ctrl-C stops",
        model_dir,
        settings.model_name,
        settings.serve_host,
        port,
        settings.serve_workers,
    )
    try:
        with sigterm_interrupts():
            if settings.serve_workers <= 1:
                _Server(_config(app, settings)).run(sockets=[sock])
            else:
                del app, model
                _supervise(settings, model_dir, sock)
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal once in-flight requests are done
    finally:
        sock.close()
        stop_helper()
    log.info("server stopped")


@contextmanager
def running_server(
    settings: Settings, model_dir: Path, *, model: ServableModel | None = None
) -> Iterator[RunningServer]:
    """Serve in a background thread for the duration of a `with` block.

    Args:
        settings: host, port (0 for any free port), body limit, model name.
        model_dir: the model artifact directory (loaded unless `model` is given).
        model: an already-loaded model to serve instead of loading `model_dir`.

    Yields:
        The running server's URL and port. On leaving the block (normally, on an
        error or on Ctrl-C) the server stops and its thread is joined.

    Raises:
        ModelError, ServingError: as for `run_server`, or when it does not start.
    """
    app = build_app(model if model is not None else load_for_serving(model_dir), settings)
    sock = bind_socket(settings.serve_host, settings.serve_port)
    port = sock.getsockname()[1]
    server = _Server(_config(app, settings))
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
        host = settings.serve_host if ":" not in settings.serve_host else f"[{settings.serve_host}]"
        yield RunningServer(f"http://{host}:{port}", port, model_dir)
    finally:
        server.should_exit = True
        thread.join(WORKER_STOP_SECONDS)
        sock.close()
        stop_helper()


def _config(app: Any, settings: Settings) -> uvicorn.Config:
    # log_config=None: our logging setup (stderr, INFO) applies; no access log, which
    # would cost more per request than validating the image. The protocol is
    # uvicorn's httptools one with the limits of `deadlines` (arrival deadline,
    # header size, JSON refusals, lingering close, drain).
    return uvicorn.Config(
        app,
        http=deadline_protocol(settings.request_timeout, GRACEFUL_STOP_SECONDS),
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=CANCEL_AFTER_SECONDS,
        backlog=BACKLOG,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, which first accepts the connections waiting in the socket's queue.

    uvicorn closes the listening socket when it stops, which resets every
    connection the kernel had accepted for it, requests and all; these are served
    instead, as the connections it had accepted already are.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        protocol = functools.partial(
            self.config.http_protocol_class,  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        for listener in sockets or []:
            listener.setblocking(False)
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:  # BlockingIOError: none left
                    break
                await loop.connect_accepted_socket(protocol, connection)
        await super().shutdown(sockets)


def _supervise(settings: Settings, model_dir: Path, sock: socket.socket) -> None:
    """Run `serve_workers` spawned workers on one socket; stop them all on a signal."""
    context = multiprocessing.get_context("spawn")
    workers = [
        # Not daemonic: a worker starts a helper process for large bodies (bodies.py),
        # which a daemonic process may not; the `finally` below stops every worker.
        context.Process(target=_worker, args=(settings, model_dir, sock), name=f"model-server-{i}")
        for i in range(settings.serve_workers)
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
                worker.terminate()  # SIGTERM: each worker drains (see _Server)
        # Once the workers close their copies too, new connections are refused at
        # once instead of waiting in the queue of a socket nobody accepts on.
        sock.close()
        for worker in workers:
            worker.join(WORKER_STOP_SECONDS)
            if worker.is_alive():
                worker.kill()
                worker.join()


def _worker(settings: Settings, model_dir: Path, sock: socket.socket) -> None:
    """One worker process: load the model, serve on the inherited socket."""
    from hello_kubeflow.console import configure_logging

    configure_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent relays Ctrl-C as SIGTERM
    app = build_app(load_for_serving(model_dir), settings)
    # uvicorn re-raises the SIGTERM it stopped on; as KeyboardInterrupt, it lets the
    # worker stop its helper process (bodies.py) before it ends.
    with sigterm_interrupts(), suppress(KeyboardInterrupt):
        _Server(_config(app, settings)).run(sockets=[sock])
    stop_helper()
