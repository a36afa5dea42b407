"""`inv setup --mode cluster`: check, apply each component's rendered manifests, our RBAC, wait.

Profiles (`install/components.py` says where each file comes from):
    pipelines  Kubeflow Pipelines standalone, plus a model-serving system:
               Seldon Core v1, or KServe (with cert-manager, in Standard mode: no Knative).
    full       the Kubeflow platform's example install (includes KServe, Istio, Dex).

The manifests come from `HK_MANIFESTS_DIR` (written by `inv setup --render
DIR`; no network needed), or are rendered from upstream into the cache
first. Each component is applied through the API (`install/apply.py`): its
Namespaces and CRDs, then a wait for the CRDs to be established, then the
rest, retrying webhooks until they serve. Applying twice changes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hello_kubeflow.errors import PrerequisiteError
from hello_kubeflow.install.apply import APPLY_BACKOFF, APPLY_DEADLINE, Applier
from hello_kubeflow.install.components import (
    Manifest,
    Step,
    components_for,
    read_manifests,
    resolve_serving,
)
from hello_kubeflow.install.customize import prepare
from hello_kubeflow.install.inotify import Reader
from hello_kubeflow.install.prereqs import Check, check_prerequisites, failed
from hello_kubeflow.install.render import render_manifests
from hello_kubeflow.install.requirements import requirements_lines
from hello_kubeflow.kube.client import api_client, kube_target
from hello_kubeflow.kube.wait import wait_for_pods
from hello_kubeflow.retry import Backoff
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

# Package data (shipped in the wheel too), not a path walked up from this file.
RBAC_DIR = Path(str(resources.files("hello_kubeflow").joinpath("manifests")))
"""The project's own manifests (the pipeline's service account and its rights)."""
SETTLE_SECONDS = 10.0
"""After an install, everything must stay ready this long: late pods still appear."""
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


@dataclass(frozen=True)
class Plan:
    """What `inv setup` will do on a cluster: the steps, from which files, the wait."""

    profile: str
    serving: str
    manifests_dir: Path
    steps: tuple[Step, ...]
    rbac: tuple[Manifest, ...]
    namespaces: tuple[str, ...]

    @property
    def objects(self) -> int:
        """How many objects the install applies."""
        return sum(len(s.objects) for s in self.steps) + len(self.rbac)

    def describe(self, target: str, settings: Settings) -> str:
        """The plan as text: target, versions, each step, images, resources, the wait."""
        lines = [
            f"Plan for profile '{self.profile}' (serving: {self.serving}):",
            f"  target: {target}",
            f"  manifests: {self.manifests_dir}",
            "  versions: " + ", ".join(s.component.title for s in self.steps),
        ]
        for number, step in enumerate(self.steps, 1):
            files = ", ".join(f.name for f in step.component.files)
            lines.append(
                f"  {number}. {step.component.title}: {len(step.objects)} objects from "
                f"{step.component.folder}/ ({files})"
            )
            lines.append(f"     {_phases(step.objects)}")
            lines.extend(f"     change: {note}" for note in step.notes)
        lines.append(
            f"  {len(self.steps) + 1}. the pipeline's RBAC ({RBAC_DIR.name}/): "
            f"{len(self.rbac)} objects"
        )
        lines.extend(f"     {_rbac_line(obj)}" for obj in self.rbac)
        where = ", ".join(self.namespaces) or "all namespaces"
        lines.append(f"  {len(self.steps) + 2}. wait until every pod in {where} is ready")
        lines.append(
            f"  Crash-looping pods fail the wait once their dependencies are up, or after "
            f"{settings.wait_crash_grace:.0f} s (HK_WAIT_CRASH_GRACE)."
        )
        lines.append(
            f"  Failures that heal (CRDs not established, webhooks not serving, 5xx/429) are "
            f"retried for up to {APPLY_DEADLINE:.0f} s per step; applying twice changes nothing."
        )
        images = sorted({i for s in self.steps for i in images_of(s.objects)})
        lines.append(f"  images to pull ({len(images)}):")
        lines.extend(f"    {image}" for image in images)
        lines.append(
            "    (and what controllers start later, named in their flags and ConfigMaps: "
            "Argo's executor, model-serving runtimes)"
        )
        lines.extend(f"  {line}" for line in requirements_lines(self.steps, settings))
        return "\n".join(lines)


def _rbac_line(obj: Manifest) -> str:
    """`Kind name`, and the Kubeflow role an aggregated ClusterRole adds its rules to."""
    meta = obj.get("metadata") or {}
    line = f"{obj.get('kind')} {meta.get('name')}"
    prefix = "rbac.authorization.kubeflow.org/aggregate-to-"
    into = sorted(k.removeprefix(prefix) for k in meta.get("labels") or {} if k.startswith(prefix))
    return line + (f" (aggregated into {', '.join(into)})" if into else "")


def _phases(objects: tuple[Manifest, ...]) -> str:
    kinds = Counter(str(o.get("kind")) for o in objects)
    first = kinds["Namespace"] + kinds["CustomResourceDefinition"]
    crds = kinds["CustomResourceDefinition"]
    if not first:
        return f"apply {len(objects)} objects"
    wait = f", wait until the {crds} CRDs are established" if crds else ""
    return (
        f"apply {kinds['Namespace']} Namespaces and {crds} CRDs{wait}, "
        f"then the other {len(objects) - first}"
    )


def images_of(objects: tuple[Manifest, ...] | list[Manifest]) -> Iterator[str]:
    """Images the workloads' pod templates name, and images their settings name.

    Controllers pull more later (KServe's serving runtimes, KFP's driver and
    launcher), named in their env (`*_IMAGE`, `*IMAGE_AND_VERSION`) or ConfigMaps.
    """
    for obj in objects:
        if obj.get("kind") not in _WORKLOADS:
            continue
        pod = _pod_template(obj)
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            yield from _container_images(container)


def _pod_template(workload: Manifest) -> Manifest:
    """The pod spec a workload's template holds (a CronJob's, in its job template)."""
    spec = workload.get("spec") or {}
    if workload.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return (spec.get("template") or {}).get("spec") or {}  # type: ignore[no-any-return]


def _container_images(container: Manifest) -> Iterator[str]:
    """The container's image, then the images its env names (`*_IMAGE`, `*IMAGE_AND_VERSION`)."""
    if container.get("image"):
        yield str(container["image"])
    for env in container.get("env") or []:
        name, value = str(env.get("name", "")), env.get("value")
        if value and (name.endswith("_IMAGE") or name.endswith("IMAGE_AND_VERSION")):
            yield str(value)


def manifests_root(settings: Settings) -> Path:
    """Where the rendered manifests are read from: HK_MANIFESTS_DIR, else the cache."""
    return settings.manifests_dir or settings.cache_dir / "manifests"


def make_plan(settings: Settings, rbac_dir: Path = RBAC_DIR) -> Plan:
    """Read the profile's rendered manifests and make the steps.

    Raises:
        SettingsError: an unknown profile.
        ManifestError: a file of the profile is missing or unreadable.
    """
    root = manifests_root(settings)
    istio = settings.profile == "full"
    steps = []
    for component in components_for(settings):
        objects, notes = prepare(component, component.manifests(root), istio=istio)
        steps.append(Step(component, tuple(objects), tuple(notes)))
    rbac = tuple(o for path in _yaml_files(rbac_dir) for o in read_manifests(path))
    namespaces: tuple[str, ...] = ()
    if settings.profile != "full":
        namespaces = tuple(n for s in steps for n in s.component.namespaces)
        namespaces = tuple(dict.fromkeys(namespaces))
    return Plan(
        settings.profile,
        resolve_serving(settings),
        root,
        tuple(steps),
        rbac,
        settings.wait_namespaces or namespaces,
    )


def install(
    settings: Settings,
    *,
    dry_run: bool = False,
    rbac_dir: Path = RBAC_DIR,
    apply_deadline: float = APPLY_DEADLINE,
    backoff: Backoff = APPLY_BACKOFF,
    settle: float = SETTLE_SECONDS,
    read_sysctl: Reader | None = None,
) -> list[str]:
    """Check prerequisites, apply the plan, wait for every pod: `inv setup --mode cluster`.

    Args:
        settings: cluster selection, profile, versions, serving, manifests, timeouts.
        dry_run: print the plan only; touch no cluster.
        rbac_dir: the project's manifests to apply last.
        apply_deadline: seconds to retry each step through failures that heal.
        backoff: waits between apply rounds.
        settle: seconds the pods must stay ready after the install.
        read_sysctl: reads this machine's sysctls (default: /proc/sys), for the
            inotify limits of a kind or minikube node.

    Returns:
        Lines for a person: the checks, what was applied, the final state.

    Raises:
        PrerequisiteError: a blocking check failed (every failure, each with its fix).
        ManifestError: the rendered manifests are missing or unreadable.
        ApplyError: an object was refused (the API server's message).
        PodFailedError, WaitTimeoutError: as `wait_for_pods`.
    """
    root = manifests_root(settings)
    unrendered = [p for c in components_for(settings) for p in c.paths(root) if not p.is_file()]
    render = not settings.manifests_dir and bool(unrendered)  # the cache lacks these files
    if dry_run:
        return _dry_run(settings, rbac_dir, render=render)
    # The cluster first: a missing kubeconfig or a stopped cluster is said at once, not
    # after minutes of fetching manifests (or as the network failure of a fetch).
    checks = _checked_prerequisites(settings, read_sysctl)
    if render:
        log.info("rendering the manifests from upstream into %s", root)
        render_manifests(settings, root)
    plan = make_plan(settings, rbac_dir)
    lines = [c.line() for c in checks]
    api = api_client(settings.kubeconfig, settings.kube_context, settings.kube_request_timeout)
    applier = Applier(api, backoff=backoff)
    for step in plan.steps:
        count = applier.apply_in_order(step.objects, step.component.title, deadline=apply_deadline)
        lines.append(f"applied {step.component.title}: {count} objects")
    if plan.rbac:
        count = applier.apply_in_order(plan.rbac, "the pipeline's RBAC", deadline=apply_deadline)
        lines.append(f"applied the pipeline's RBAC: {count} objects")
    result = wait_for_pods(
        api,
        plan.namespaces,
        settings.wait_timeout,
        settings.wait_crash_grace,
        require_pods=True,
        settle=settle,
    )
    lines.append(result.describe())
    return lines


def _dry_run(settings: Settings, rbac_dir: Path, *, render: bool) -> list[str]:
    """The plan and the cluster it would go to; what to render first if the cache lacks it."""
    if render:
        return [_unrendered(settings, rbac_dir)]
    try:
        target = kube_target(settings.kubeconfig, settings.kube_context).describe()
    except PrerequisiteError as exc:
        target = f"none yet ({exc})"
    plan = make_plan(settings, rbac_dir)
    return [plan.describe(target, settings), "Dry run: nothing was checked or changed."]


def _checked_prerequisites(settings: Settings, read_sysctl: Reader | None) -> list[Check]:
    """Run and log the prerequisite checks.

    Raises:
        PrerequisiteError: a blocking check failed (every failure, each with its fix).
    """
    checks = check_prerequisites(
        settings, needs_docker=not settings.pipeline_image, read_sysctl=read_sysctl
    )
    for check in checks:
        (log.info if check.ok or check.blocking else log.warning)("%s", check.line())
    if failed(checks):
        problems = "\n".join(f"  {c.line()}" for c in failed(checks))
        raise PrerequisiteError(f"the cluster is not ready for inv setup:\n{problems}")
    return checks


def _unrendered(settings: Settings, rbac_dir: Path) -> str:
    names = ", ".join(c.title for c in components_for(settings))
    rbac = [o for path in _yaml_files(rbac_dir) for o in read_manifests(path)]
    ours = "".join(f"\n     {_rbac_line(obj)}" for obj in rbac)  # shipped: known already
    return (
        f"Plan for profile '{settings.profile}': {names}.\n"
        f"The manifests are not rendered yet (no HK_MANIFESTS_DIR, and not all in "
        f"{manifests_root(settings)}), so their objects and images are not known. Render "
        "them first (`inv setup --render DIR`, needs network), then run "
        "`HK_MANIFESTS_DIR=DIR inv setup --mode cluster --dry-run`.\n"
        f"The pipeline's RBAC ({rbac_dir.name}/): {len(rbac)} objects{ours}\n"
        "Dry run: nothing was checked or changed."
    )


def _yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
