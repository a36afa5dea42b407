"""kind and minikube nodes share their kernel's inotify limits: check them before installing.

Kubeflow's pods exceed common defaults and crash-loop with "too many open files".
The limits are read here only when that kernel is this machine's (a local engine,
a loopback API server); a remote Docker host or a minikube VM has its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hello_kubeflow.kube.client import KubeTarget

PROC_SYS = Path("/proc/sys")
LIMITS = {"fs.inotify.max_user_instances": 2280, "fs.inotify.max_user_watches": 1255360}
"""What kubeflow/manifests 26.03's README asks for (its Prerequisites)."""
_README = "kubeflow/manifests 26.03 README, Prerequisites"
_WANTED = [f"{key}={value}" for key, value in LIMITS.items()]
_RAISE = (
    f"sudo sysctl -w {' '.join(_WANTED)}; to keep them after a reboot: printf '"
    + "\\n".join(_WANTED)
    + "\\n' | sudo tee /etc/sysctl.d/99-kubeflow-inotify.conf"
)

Reader = Callable[[str], str | None]
"""Reads one sysctl by its dotted name (`fs.inotify.max_user_watches`); None when absent."""


@dataclass(frozen=True)
class InotifyFinding:
    """What the inotify check found.

    Attributes:
        applies: the context is a kind or minikube cluster.
        ok: the limits are high enough (or the check does not apply).
        detail: what was found.
        fix: how to raise the limits (or where to read them), when not ok.
        readable: the node's kernel is this machine's, so the limits were read.
    """

    applies: bool
    ok: bool
    detail: str
    fix: str = ""
    readable: bool = True


def proc_reader(root: Path = PROC_SYS) -> Reader:
    """A reader of `root/fs/inotify/...` (tests pass a folder standing in for /proc/sys)."""

    def read(name: str) -> str | None:
        try:
            return (root / name.replace(".", "/")).read_text().strip()
        except OSError:
            return None

    return read


def _cluster_kind(target: KubeTarget) -> str:
    """`kind`, `minikube`, or "" for any other cluster, from the kubeconfig's names.

    kind names them `kind-<cluster>` (kubernetes-sigs/kind v0.30.0,
    pkg/cluster/internal/kubeconfig, `KINDClusterKey`); minikube after its profile.
    """
    names = (target.context, target.cluster)
    if any(name.startswith("kind-") for name in names):
        return "kind"
    if any(name == "minikube" or name.startswith("minikube-") for name in names):
        return "minikube"
    return ""


def check_inotify(target: KubeTarget, engine: str, read: Reader | None = None) -> InotifyFinding:
    """Check the node kernel's inotify limits for a kind or minikube context.

    Args:
        target: the kubeconfig's context, cluster and server.
        engine: where the container engine is (`DOCKER_HOST`, or the local socket).
        read: reads a sysctl of this machine (default: /proc/sys).
    """
    kind = _cluster_kind(target)
    if not kind:
        return InotifyFinding(False, True, "not a kind or minikube cluster")
    where_else = _remote_hint(kind, target)
    ask = f"{where_else}; {_README} asks for at least {', '.join(_WANTED)}"
    if not (_loopback(target.server) and _local_engine(engine)):
        unreadable = (
            f"the {kind} node's kernel is not this machine's (API server {target.server}, "
            f"container engine {engine}), so its inotify limits cannot be read from here"
        )
    else:
        found = {key: (read or proc_reader())(key) for key in LIMITS}
        if all(value is not None for value in found.values()):
            return _limits_finding(kind, found)
        unreadable = (
            f"this machine has no /proc/sys/fs/inotify (not Linux? Docker Desktop runs "
            f"the {kind} node in its own VM)"
        )
    return InotifyFinding(True, False, unreadable, ask, readable=False)


def _limits_finding(kind: str, found: dict[str, str | None]) -> InotifyFinding:
    low = {
        key: int(value)
        for key, value in found.items()
        if value is not None and value.isdigit() and int(value) < LIMITS[key]
    }
    shown = ", ".join(f"{key}={found[key]}" for key in LIMITS)
    if not low:
        return InotifyFinding(True, True, f"{shown} (the {kind} node shares this kernel)")
    wanted = ", ".join(f"{key} {value} < {LIMITS[key]}" for key, value in low.items())
    return InotifyFinding(
        True,
        False,
        f"{wanted}: the {kind} node shares this kernel, and Kubeflow's pods would "
        f"crash-loop with 'too many open files' ({_README})",
        f"raise them: {_RAISE}",
    )


def _remote_hint(kind: str, target: KubeTarget) -> str:
    if kind == "minikube":
        profile = target.cluster or "minikube"
        return f"read them with `minikube ssh -p {profile} -- sysctl fs.inotify`"
    name = target.context.removeprefix("kind-")
    return f"read them on the Docker host with `docker exec {name}-control-plane sysctl fs.inotify`"


def _loopback(server: str) -> bool:
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_engine(engine: str) -> bool:
    """A Unix socket or loopback TCP: this kernel (Docker Desktop's VM shows no /proc/sys)."""
    if engine.startswith("unix://"):
        return True
    if engine.startswith(("tcp://", "http://", "https://")):
        return _loopback(engine.replace("tcp://", "http://", 1))
    return False  # ssh://, or npipe:// (Docker Desktop on Windows runs a VM)
