"""`kubectl port-forward` for the duration of a task: started, waited for, always stopped."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hello_kubeflow.errors import ClusterError, PrerequisiteError

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


@contextmanager
def port_forward(
    target: str,
    namespace: str,
    remote_port: int,
    *,
    kubeconfig: Path | str | None = None,
    context: str | None = None,
    preferred_port: int = 0,
) -> Iterator[str]:
    """Run `kubectl port-forward` for the duration; yield `http://127.0.0.1:<port>`.

    Args:
        target: what to forward to, e.g. `svc/ml-pipeline-ui`.
        namespace: the target's namespace.
        remote_port: the target's port.
        kubeconfig: a file or an `os.pathsep` list of files (None: kubectl's default).
        context: the context to use (None: the current one).
        preferred_port: the local port to use when free (else any free port).

    Raises:
        PrerequisiteError: kubectl is not installed.
        ClusterError: kubectl exited or the port did not open in time.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise PrerequisiteError(
            f"kubectl is not on PATH, and it is needed to reach {target} in {namespace}: "
            "install kubectl (https://kubernetes.io/docs/tasks/tools/), or set "
            "HK_KFP_ENDPOINT / HK_GATEWAY_URL to an address you can reach"
        )
    port = _free_port(preferred_port)
    command = [kubectl, "port-forward", target, f"{port}:{remote_port}", "-n", namespace]
    command += ["--address", "127.0.0.1"]
    env = None
    if os.pathsep in str(kubeconfig or ""):  # --kubeconfig takes one file; a list: KUBECONFIG
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    elif kubeconfig:
        command += ["--kubeconfig", str(kubeconfig)]
    if context:
        command += ["--context", context]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="hk-port-forward-") as tmp:
        output = Path(tmp) / "kubectl.log"
        with output.open("wb") as sink:
            # A file, not a pipe: kubectl logs every connection and a full pipe would stall it.
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env
            )
        try:
            _wait_for_port(
                process, port, READY_TIMEOUT, what=f"{target} -n {namespace}", output=output
            )
            log.info("forwarding %s to %s in %s (kubectl port-forward)", url, target, namespace)
            yield url
        finally:
            _stop(process)


def _wait_for_port(
    process: subprocess.Popen[bytes], port: int, timeout: float, *, what: str, output: Path
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            said = output.read_text(errors="replace").strip()[-800:] or "(no output)"
            raise ClusterError(
                f"kubectl port-forward {what} exited ({process.returncode}): {said}. "
                "Check that the cluster is up (`inv status`) and that the service exists "
                "(`inv setup` installs it)"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            _stop(process)
            raise ClusterError(
                f"kubectl port-forward {what} did not open 127.0.0.1:{port} within "
                f"{timeout:.0f} s: check `kubectl get pods -n {what.rsplit(' ', 1)[-1]}`"
            )
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def _free_port(preferred: int = 0) -> int:
    """`preferred` when nothing listens there, else a free port the system picks."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise ClusterError("no free local port for kubectl port-forward")  # pragma: no cover
