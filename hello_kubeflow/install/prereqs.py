"""Before touching a cluster: the kubeconfig and context, the API server, room, Docker."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kubernetes import client

from hello_kubeflow.errors import (
    DockerUnavailableError,
    HelloKubeflowError,
    PrerequisiteError,
)
from hello_kubeflow.images.engine import connect, engine_address
from hello_kubeflow.install.inotify import Reader, check_inotify
from hello_kubeflow.install.requirements import quantity
from hello_kubeflow.kube.client import (
    KubeTarget,
    api_client,
    api_retrying,
    describe_api_error,
    kube_target,
)
from hello_kubeflow.settings import Settings

API_PATIENCE = 20.0
"""Seconds to keep retrying a first API call that fails transiently."""
REQUIREMENTS = {"pipelines": (4.0, 8.0), "full": (8.0, 16.0)}
"""Allocatable (CPU cores, memory GiB) each profile wants across the nodes."""
GIB = 1024**3


@dataclass(frozen=True)
class Check:
    """One prerequisite: what was found, and how to fix it if it is missing.

    Attributes:
        name: what is checked (kubeconfig, API server, capacity, ...).
        ok: found and good enough.
        detail: what was found (a version, a context), or what is wrong.
        fix: how to fix it, when not ok.
        blocking: whether setup must stop (a warning otherwise).
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = True

    def line(self) -> str:
        """`[ok]   API server: ...`; failures and warnings carry their fix."""
        mark = "ok" if self.ok else ("FAIL" if self.blocking else "warn")
        fix = f" -> {self.fix}" if self.fix and not self.ok else ""
        return f"[{mark}]{' ' * (5 - len(mark))}{self.name}: {self.detail}{fix}"


def check_prerequisites(
    settings: Settings,
    *,
    needs_docker: bool = True,
    patience: float = API_PATIENCE,
    read_sysctl: Reader | None = None,
) -> list[Check]:
    """Check, in order, everything `inv setup` needs; stop at the first blocking failure.

    Args:
        settings: the cluster selection, the profile, `docker_timeout`.
        needs_docker: whether later steps build an image (no HK_PIPELINE_IMAGE).
        patience: seconds to retry the first API calls through transient errors.
        read_sysctl: reads this machine's sysctls (default: /proc/sys).

    Returns:
        The checks made; `failed(checks)` tells whether setup may go on.
    """
    try:
        target = kube_target(settings.kubeconfig, settings.kube_context)
    except PrerequisiteError as exc:
        return [Check("kubeconfig", False, str(exc))]
    checks = [Check("kubeconfig", True, f"{target.describe()} from {target.kubeconfig}")]
    checks += _inotify(target, read_sysctl)
    try:
        api = api_client(*settings.kube_access)
        version = _server_version(api, patience)
    except HelloKubeflowError as exc:
        return [*checks, Check("API server", False, str(exc))]
    except Exception as exc:  # any failure to connect is the finding
        return [
            *checks,
            Check(
                "API server",
                False,
                f"cannot reach {target.server}: {describe_api_error(exc)}",
                "start the cluster (`minikube start`, `kind create cluster`) or pick another "
                "context (HK_KUBE_CONTEXT)",
            ),
        ]
    checks.append(Check("API server", True, f"{target.server} answers, Kubernetes {version}"))
    checks.append(_capacity(api, settings.profile, patience))
    if needs_docker:
        checks.append(_docker())
    return checks


def failed(checks: list[Check]) -> list[Check]:
    """The blocking checks that did not pass."""
    return [c for c in checks if not c.ok and c.blocking]


def _server_version(api: client.ApiClient, patience: float) -> str:
    retrying = api_retrying(patience, "asking the API server its version")
    response = retrying(client.VersionApi(api).get_code, _preload_content=False)
    return str(json.loads(response.data).get("gitVersion", "unknown"))


def _capacity(api: client.ApiClient, profile: str, patience: float) -> Check:
    """Allocatable CPU and memory of the schedulable nodes against what the profile wants."""
    want_cpu, want_gib = REQUIREMENTS[profile]
    try:
        response = api_retrying(patience, "listing nodes")(
            client.CoreV1Api(api).list_node, _preload_content=False
        )
    except Exception as exc:  # a warning: setup can go on without knowing
        return Check(
            "capacity", False, f"cannot list nodes ({describe_api_error(exc)})", blocking=False
        )
    nodes = [
        n
        for n in json.loads(response.data).get("items") or []
        if not (n.get("spec") or {}).get("unschedulable")
    ]
    allocatable = [(n.get("status") or {}).get("allocatable", {}) for n in nodes]
    cpu = sum(quantity(str(a.get("cpu", "0"))) for a in allocatable)
    memory = sum(quantity(str(a.get("memory", "0"))) for a in allocatable)
    found = f"{len(nodes)} schedulable node(s), {cpu:g} CPU and {memory / GIB:.1f} GiB allocatable"
    want = f"the '{profile}' profile wants {want_cpu:g} CPU and {want_gib:g} GiB"
    if cpu >= want_cpu and memory >= want_gib * GIB:
        return Check("capacity", True, f"{found}; {want}")
    return Check(
        "capacity",
        False,
        f"{found}, but {want}",
        "give the cluster more (e.g. `minikube start --cpus 4 --memory 8g`) or expect "
        "Unschedulable pods",
        blocking=False,
    )


def _inotify(target: KubeTarget, read: Reader | None) -> list[Check]:
    """kind and minikube only: blocking when this kernel's limits are low, else a warning."""
    found = check_inotify(target, engine_address(), read)
    if not found.applies:
        return []
    return [Check("inotify limits", found.ok, found.detail, found.fix, blocking=found.readable)]


def _docker() -> Check:
    try:
        engine = connect(5.0)
        version = str(engine.version().get("Version", "?"))
        engine.close()
    except DockerUnavailableError as exc:
        return Check(
            "Docker",
            False,
            f"needed by `inv build-push` to build the pipeline image: {exc}",
            "or set HK_PIPELINE_IMAGE to an image the cluster can pull",
            blocking=False,
        )
    return Check("Docker", True, f"engine {version} (for `inv build-push`)")
