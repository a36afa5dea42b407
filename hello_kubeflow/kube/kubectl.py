"""Build manifests with kustomize and apply them server-side with kubectl, retrying what heals.

Right after CRDs or webhooks are created, applying what depends on them fails
for a while (`no matches for kind`, `failed calling webhook ... connection
refused`); an API server under load answers 5xx/429 or `etcdserver: request
timed out`. Those failures are retried with jittered backoff until a deadline;
any other failure is reported at once with kubectl's own message.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, stop_after_delay

from hello_kubeflow.backoff import jittered_backoff, log_retry
from hello_kubeflow.errors import ApplyError, PrerequisiteError
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

FIELD_MANAGER = "hello-kubeflow"
BUILD_TIMEOUT = 300.0
"""Seconds for one kustomize build (a remote source is a git clone)."""
APPLY_TIMEOUT = 600.0
"""Seconds for one kubectl apply."""
APPLY_DEADLINE = 900.0
"""Seconds to keep retrying one apply through transient failures."""

_TRANSIENT = re.compile(
    "|".join(
        [
            r"no matches for kind",  # a CRD applied in the same batch is not established yet
            r"ensure CRDs are installed first",
            r"resource mapping not found",
            r"the server could not find the requested resource",
            r"failed calling webhook",  # the webhook's pod or certificate is not ready yet
            r"no endpoints available for service",
            r"connection refused",
            r"connection reset by peer",
            r"context deadline exceeded",
            r"i/o timeout",
            r"TLS handshake timeout",
            r"unexpected EOF",
            r"etcdserver: (request timed out|leader changed)",
            r"the server is currently unable to handle the request",
            r"too many requests|TooManyRequests|\b429\b",
            r"Internal error occurred|\(InternalError\)|ServiceUnavailable|\b50[234]\b",
            r"the object has been modified",
            # a remote kustomize source is a git clone: network hiccups heal
            r"could not resolve host|unable to access|early EOF|RPC failed|timed out",
        ]
    ),
    re.IGNORECASE,
)
_ERROR_LINE = re.compile(r"^(error|Error from server|unable to recognize|Unable to connect)", re.I)


class TransientApplyError(Exception):
    """A kubectl or kustomize failure that may heal: retried until the deadline."""


@dataclass(frozen=True)
class ApplyBackoff:
    """Waits between attempts of one apply."""

    initial: float = 2.0
    maximum: float = 20.0


@dataclass(frozen=True)
class Kubectl:
    """How to call kubectl (and kustomize) against the cluster the settings select.

    Attributes:
        binary: the kubectl executable.
        kustomize: a standalone kustomize executable, or "" to use `kubectl kustomize`.
        kubeconfig: passed as --kubeconfig when set.
        context: passed as --context when set.
        request_timeout: seconds for each API request kubectl makes.
        field_manager: who owns the applied fields (server-side apply).
    """

    binary: str = "kubectl"
    kustomize: str = ""
    kubeconfig: str = ""
    context: str = ""
    request_timeout: float = 30.0
    field_manager: str = FIELD_MANAGER

    @classmethod
    def from_settings(cls, settings: Settings) -> Kubectl:
        """kubectl from PATH (and kustomize, if installed), aimed at the settings' cluster."""
        # kubectl's --kubeconfig takes one file; a KUBECONFIG list reaches it by inheritance.
        kubeconfig = str(settings.kubeconfig or "")
        return cls(
            binary="kubectl",
            kustomize="kustomize" if shutil.which("kustomize") else "",
            kubeconfig="" if os.pathsep in kubeconfig else kubeconfig,
            context=settings.kube_context or "",
            request_timeout=settings.kube_request_timeout,
        )

    def base(self) -> list[str]:
        """kubectl with the cluster selection flags."""
        command = [self.binary]
        if self.kubeconfig:
            command.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            command.append(f"--context={self.context}")
        return command

    def build(self, source: str) -> list[str]:
        """The command that renders a kustomize source (a URL or a directory)."""
        if self.kustomize:
            return [self.kustomize, "build", source]
        return [self.binary, "kustomize", source]

    def apply(self, files: str = "-") -> list[str]:
        """Server-side apply of `files` ("-": standard input), as upstream recommends."""
        command = [
            *self.base(),
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--field-manager={self.field_manager}",
            f"--request-timeout={int(self.request_timeout)}s",
            "-f",
            files,
        ]
        return command if files == "-" else [*command, "--recursive"]

    def shell(self, source: str) -> str:
        """The pipeline as a person would type it: build | apply."""
        return f"{shlex.join(self.build(source))} | {shlex.join(self.apply())}"

    def run(self, command: list[str], timeout: float, stdin: bytes = b"") -> str:
        """Run one command; return its stdout.

        Raises:
            PrerequisiteError: the executable is not installed.
            TransientApplyError: it failed in a way that may heal, or timed out.
            ApplyError: it failed otherwise (kubectl's own message).
        """
        try:
            done = subprocess.run(
                command, input=stdin, capture_output=True, timeout=timeout, check=False
            )
        except FileNotFoundError:
            raise PrerequisiteError(
                f"`{command[0]}` is not installed (or not on PATH). Install kubectl: "
                "https://kubernetes.io/docs/tasks/tools/"
            ) from None
        except subprocess.TimeoutExpired:
            raise TransientApplyError(
                f"`{shlex.join(command[:3])} ...` took over {timeout:.0f} s"
            ) from None
        if done.returncode == 0:
            return done.stdout.decode(errors="replace")
        message = (done.stderr or done.stdout).decode(
            errors="replace"
        ).strip() or f"exit {done.returncode}"
        if is_transient_failure(message):
            raise TransientApplyError(message)
        raise ApplyError(f"`{shlex.join(command)}` failed:\n{message}")


def is_transient_failure(message: str) -> bool:
    """True when every error line of kubectl's output is one that heals by retrying."""
    lines = [line for line in message.splitlines() if _ERROR_LINE.match(line.strip())]
    return (
        all(_TRANSIENT.search(line) for line in lines)
        if lines
        else bool(_TRANSIENT.search(message))
    )


def apply_source(
    kubectl: Kubectl,
    source: str,
    what: str,
    *,
    deadline: float = APPLY_DEADLINE,
    backoff: ApplyBackoff | None = None,
) -> int:
    """Build a kustomize source (URL or directory) or apply a directory; retry what heals.

    Args:
        kubectl: how to call kubectl.
        source: a kustomize source, or a directory of plain YAML prefixed `files:`.
        what: names the step in messages.
        deadline: seconds to keep retrying transient failures.
        backoff: waits between attempts.

    Returns:
        How many objects kubectl reported applied.

    Raises:
        ApplyError: a failure that is not transient, or one that lasted past the deadline
            (with kubectl's last message).
        PrerequisiteError: kubectl (or kustomize) is not installed.
    """
    backoff = backoff or ApplyBackoff()
    built: list[bytes] = []
    attempts = 0

    def attempt() -> str:
        nonlocal attempts
        attempts += 1
        if source.startswith("files:"):
            return kubectl.run(kubectl.apply(source.removeprefix("files:")), APPLY_TIMEOUT)
        if not built:  # build once; only the apply is repeated
            built.append(kubectl.run(kubectl.build(source), BUILD_TIMEOUT).encode())
        return kubectl.run(kubectl.apply(), APPLY_TIMEOUT, stdin=built[0])

    retrying = Retrying(
        retry=retry_if_exception_type(TransientApplyError),
        wait=jittered_backoff(backoff.initial, backoff.maximum),
        stop=stop_after_delay(deadline),
        reraise=True,
        before_sleep=log_retry(log, f"applying {what}", level=logging.INFO),
    )
    log.info("applying %s", what)
    try:
        output = retrying(attempt)
    except TransientApplyError as exc:
        raise ApplyError(
            f"applying {what} still failed after {attempts} attempts over {deadline:.0f} s; "
            f"kubectl said:\n{exc}\nIf a webhook or CRD never becomes ready, check its pods "
            "(inv status); then run inv setup again (it is safe to repeat)."
        ) from None
    applied = sum(1 for line in output.splitlines() if line.strip())
    log.info("applied %s: %d objects", what, applied)
    return applied


def yaml_files(directory: Path) -> list[Path]:
    """The YAML files under `directory` (recursively), sorted; [] if it does not exist."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
