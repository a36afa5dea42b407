"""`inv setup --mode cluster`: check, apply each component's rendered manifests, our RBAC, wait."""

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
    pod_template,
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
_DRY_RUN = "Dry run: nothing was checked or changed."


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

    def describe(self, target: str, crash_grace: float) -> str:
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
        images = sorted({i for s in self.steps for i in _images(s.objects)})
        lines += [
            f"  {len(self.steps) + 2}. wait until every pod in {where} is ready",
            f"  Crash-looping pods fail the wait once their dependencies are up, or after "
            f"{crash_grace:.0f} s (HK_WAIT_CRASH_GRACE).",
            f"  Failures that heal (CRDs not established, webhooks not serving, 5xx/429) are "
            f"retried for up to {APPLY_DEADLINE:.0f} s per step; applying twice changes nothing.",
            f"  images to pull ({len(images)}):",
            *(f"    {image}" for image in images),
            "    (and what controllers start later, named in their flags and ConfigMaps: "
            "Argo's executor, model-serving runtimes)",
            *(f"  {line}" for line in requirements_lines(self.steps, self.profile)),
        ]
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
    crds = kinds["CustomResourceDefinition"]
    first = kinds["Namespace"] + crds
    if not first:
        return f"apply {len(objects)} objects"
    wait = f", wait until the {crds} CRDs are established" if crds else ""
    return (
        f"apply {kinds['Namespace']} Namespaces and {crds} CRDs{wait}, "
        f"then the other {len(objects) - first}"
    )


def _images(objects: tuple[Manifest, ...]) -> Iterator[str]:
    """The workloads' container images, and those their env names for controllers to pull."""
    for obj in objects:
        if obj.get("kind") not in _WORKLOADS:
            continue
        pod = pod_template(obj)
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            if container.get("image"):
                yield str(container["image"])
            for env in container.get("env") or []:
                name, value = str(env.get("name", "")), env.get("value")
                if value and name.endswith(("_IMAGE", "IMAGE_AND_VERSION")):
                    yield str(value)


def manifests_root(settings: Settings) -> Path:
    """Where the rendered manifests are read from: HK_MANIFESTS_DIR, else the cache."""
    return settings.manifests_dir or settings.cache_dir / "manifests"


def make_plan(settings: Settings, rbac_dir: Path = RBAC_DIR) -> Plan:
    """Read the profile's rendered manifests and make the steps.

    Raises:
        ManifestError: a file of the profile is missing or unreadable.
    """
    root, full = manifests_root(settings), settings.profile == "full"
    steps = []
    for component in components_for(settings):
        objects, notes = prepare(component, component.manifests(root), istio=full)
        steps.append(Step(component, tuple(objects), tuple(notes)))
    namespaces: tuple[str, ...] = ()
    if not full:
        namespaces = tuple(dict.fromkeys(n for s in steps for n in s.component.namespaces))
    return Plan(
        settings.profile,
        resolve_serving(settings.serving, settings.profile),
        root,
        tuple(steps),
        _rbac(rbac_dir),
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
        read_sysctl: reads this machine's sysctls (default: /proc/sys).

    Returns:
        Lines for a person: the checks, what was applied, the final state.

    Raises:
        PrerequisiteError: a blocking check failed (every failure, each with its fix).
        ManifestError: the rendered manifests are missing or unreadable.
        ApplyError: an object was refused (the API server's message).
        PodFailedError, WaitTimeoutError: as `wait_for_pods`.
    """
    root = manifests_root(settings)
    components = components_for(settings)
    # the cache lacks some files: render them first
    render = not settings.manifests_dir and any(
        not p.is_file() for c in components for p in c.paths(root)
    )
    if dry_run and render:
        names = ", ".join(c.title for c in components)
        return [_unrendered(settings.profile, names, root, rbac_dir)]
    if dry_run:
        try:
            target = kube_target(settings.kubeconfig, settings.kube_context).describe()
        except PrerequisiteError as exc:
            target = f"none yet ({exc})"
        plan = make_plan(settings, rbac_dir)
        return [plan.describe(target, settings.wait_crash_grace), _DRY_RUN]
    # The cluster first: a missing kubeconfig or a stopped cluster is said at once, not
    # after minutes of fetching manifests (or as the network failure of a fetch).
    checks = _passed(
        check_prerequisites(
            settings, needs_docker=not settings.pipeline_image, read_sysctl=read_sysctl
        )
    )
    if render:
        log.info("rendering the manifests from upstream into %s", root)
        render_manifests(settings, root)
    plan = make_plan(settings, rbac_dir)
    lines = [c.line() for c in checks]
    api = api_client(*settings.kube_access)
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


def _passed(checks: list[Check]) -> list[Check]:
    """Log the prerequisite checks; raise PrerequisiteError naming each blocking failure."""
    for check in checks:
        (log.info if check.ok or check.blocking else log.warning)("%s", check.line())
    if failed(checks):
        problems = "\n".join(f"  {c.line()}" for c in failed(checks))
        raise PrerequisiteError(f"the cluster is not ready for inv setup:\n{problems}")
    return checks


def _unrendered(profile: str, names: str, root: Path, rbac_dir: Path) -> str:
    rbac = _rbac(rbac_dir)
    ours = "".join(f"\n     {_rbac_line(obj)}" for obj in rbac)  # shipped: known already
    return (
        f"Plan for profile '{profile}': {names}.\n"
        f"The manifests are not rendered yet (no HK_MANIFESTS_DIR, and not all in "
        f"{root}), so their objects and images are not known. Render "
        "them first (`inv setup --render DIR`, needs network), then run "
        "`HK_MANIFESTS_DIR=DIR inv setup --mode cluster --dry-run`.\n"
        f"The pipeline's RBAC ({rbac_dir.name}/): {len(rbac)} objects{ours}\n{_DRY_RUN}"
    )


def _rbac(directory: Path) -> tuple[Manifest, ...]:
    """The objects of the project's own manifests (every YAML file under `directory`)."""
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return tuple(obj for path in files for obj in read_manifests(path))
