"""`inv setup --mode cluster`: check, apply the profile's manifests, apply our RBAC, wait.

Profiles:
    pipelines  Kubeflow Pipelines standalone, plus a model-serving system:
               Seldon Core v1 (operator creates its own webhook certificates) or
               KServe (with cert-manager, in RawDeployment mode: no Knative).
    full       the Kubeflow manifests' example install (includes KServe).

Manifests come from their upstream kustomize sources at the pinned versions
(settings), or from `HK_MANIFESTS_DIR` holding a checkout of each repository
(`pipelines/`, `seldon-core/`, `kserve/`, `manifests/`). Each source is built
with kustomize and applied server-side, which makes a second run change nothing.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from hello_kubeflow.errors import PrerequisiteError, SettingsError
from hello_kubeflow.kube.client import kube_target
from hello_kubeflow.kube.kubectl import (
    APPLY_DEADLINE,
    ApplyBackoff,
    Kubectl,
    apply_source,
    yaml_files,
)
from hello_kubeflow.kube.prereqs import check_prerequisites, failed
from hello_kubeflow.kube.wait import wait_for_pods
from hello_kubeflow.settings import PROFILES, Settings

log = logging.getLogger(__name__)

RBAC_DIR = Path(__file__).resolve().parent.parent / "manifests"
"""The project's own manifests (the pipeline's service account and its rights)."""
SETTLE_SECONDS = 10.0
"""After an install, everything must stay ready this long: late pods still appear."""
OVERRIDE_FIELD_MANAGER = "hello-kubeflow-overrides"
"""Owner of the inline steps' fields. Not the main manager: an apply drops every field
its manager applied before and leaves out, so one key applied as `hello-kubeflow` would
wipe the rest of the ConfigMap that manager applied from upstream."""

_REPOS = {
    "pipelines": "github.com/kubeflow/pipelines",
    "seldon-core": "github.com/SeldonIO/seldon-core",
    "kserve": "github.com/kserve/kserve",
    "manifests": "github.com/kubeflow/manifests",
}
# KServe without Knative: plain Deployments; SSA merges just this key into the ConfigMap.
_KSERVE_RAW_MODE = "\n".join(
    [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata: {name: inferenceservice-config, namespace: kserve}",
        "data:",
        '  deploy: \'{"defaultDeploymentMode": "RawDeployment"}\'',
        "",
    ]
)


@dataclass(frozen=True)
class Step:
    """One thing to apply: a kustomize source, a directory of YAML, or inline YAML.

    Attributes:
        what: what it installs, for a person.
        source: a kustomize source (URL or directory), or `files:<dir>`, or "" for `inline`.
        inline: YAML to apply as is (when `source` is "").
    """

    what: str
    source: str
    inline: str = ""


@dataclass(frozen=True)
class Plan:
    """What `inv setup` will do on a cluster, with which versions."""

    profile: str
    serving: str
    versions: dict[str, str]
    steps: tuple[Step, ...]
    namespaces: tuple[str, ...]

    def describe(self, kubectl: Kubectl, target: str) -> str:
        """The plan as text: target, versions, each step with its command, the wait."""
        lines = [
            f"Plan for profile '{self.profile}' (serving: {self.serving}):",
            f"  target: {target}",
            "  versions: " + ", ".join(f"{k} {v}" for k, v in self.versions.items()),
        ]
        for number, step in enumerate(self.steps, 1):
            lines.append(f"  {number}. {step.what}")
            if step.source.startswith("files:"):
                lines.append(
                    f"     $ {' '.join(kubectl.apply(step.source.removeprefix('files:')))}"
                )
            elif step.source:
                lines.append(f"     $ {kubectl.shell(step.source)}")
            else:
                overriding = replace(kubectl, field_manager=OVERRIDE_FIELD_MANAGER)
                lines.append(
                    f"     $ {' '.join(overriding.apply())}  <<< {step.inline.splitlines()[2]}"
                )
        where = ", ".join(self.namespaces) or "all namespaces"
        lines.append(f"  {len(self.steps) + 1}. wait until every pod in {where} is ready")
        lines.append("  Transient failures (CRDs not established, webhooks not serving, 5xx/429)")
        lines.append(f"  are retried for up to {APPLY_DEADLINE:.0f} s per step.")
        lines.append("  Applying twice changes nothing (server-side apply).")
        return "\n".join(lines)


def resolve_serving(settings: Settings) -> str:
    """`seldon` or `kserve`: `auto` is Seldon Core for `pipelines`, KServe for `full`."""
    if settings.serving != "auto":
        return settings.serving
    return "kserve" if settings.profile == "full" else "seldon"


def _v(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


def make_plan(settings: Settings, rbac_dir: Path = RBAC_DIR) -> Plan:
    """The steps for the settings' profile and serving system, at the pinned versions.

    Raises:
        SettingsError: an unknown profile.
    """
    if settings.profile not in PROFILES:
        raise SettingsError(
            [f"HK_PROFILE={settings.profile!r}: expected one of {', '.join(PROFILES)}"]
        )
    serving = resolve_serving(settings)

    def source(repo: str, path: str, ref: str) -> str:
        if settings.manifests_dir:
            return str(settings.manifests_dir / repo / path)
        return f"{_REPOS[repo]}/{path}?ref={ref}"

    steps: list[Step] = []
    versions: dict[str, str] = {}
    if settings.profile == "full":
        versions["Kubeflow manifests"] = settings.kubeflow_version
        steps.append(
            Step(
                f"Kubeflow {settings.kubeflow_version} (manifests' example)",
                source("manifests", "example", settings.kubeflow_version),
            )
        )
        namespaces: tuple[str, ...] = ()
    else:
        kfp, base = settings.kfp_version, "manifests/kustomize"
        versions["Kubeflow Pipelines"] = kfp
        steps.append(
            Step(
                f"Kubeflow Pipelines {kfp}: cluster-scoped resources",
                source("pipelines", f"{base}/cluster-scoped-resources", kfp),
            )
        )
        steps.append(Step(f"Kubeflow Pipelines {kfp}", source("pipelines", f"{base}/env/dev", kfp)))
        namespaces = ("kubeflow",)
    if serving == "seldon":
        version = _v(settings.seldon_version)
        versions["Seldon Core"] = version
        steps.append(
            Step(
                f"Seldon Core {version} operator",
                source("seldon-core", "operator/config/lite", version),
            )
        )
        namespaces += ("seldon-system",) if namespaces else ()
    elif settings.profile != "full":  # the full install already includes KServe
        version = _v(settings.kserve_version)
        versions["KServe"] = version
        versions["cert-manager (from Kubeflow manifests)"] = settings.kubeflow_version
        steps.append(
            Step(
                "cert-manager",
                source("manifests", "common/cert-manager/base", settings.kubeflow_version),
            )
        )
        steps.append(Step(f"KServe {version}", source("kserve", "config/default", version)))
        steps.append(
            Step(
                f"KServe {version} serving runtimes",
                source("kserve", "config/clusterresources", version),
            )
        )
        steps.append(Step("KServe in RawDeployment mode (no Knative)", "", _KSERVE_RAW_MODE))
        namespaces += ("cert-manager", "kserve")
    if yaml_files(rbac_dir):
        steps.append(Step(f"the pipeline's RBAC ({rbac_dir})", f"files:{rbac_dir}"))
    return Plan(
        settings.profile, serving, versions, tuple(steps), settings.wait_namespaces or namespaces
    )


def install(
    settings: Settings,
    *,
    dry_run: bool = False,
    kubectl: Kubectl | None = None,
    rbac_dir: Path = RBAC_DIR,
    apply_deadline: float = APPLY_DEADLINE,
    backoff: ApplyBackoff | None = None,
    settle: float = SETTLE_SECONDS,
) -> list[str]:
    """Check prerequisites, apply the plan, wait for every pod: `inv setup --mode cluster`.

    Args:
        settings: cluster selection, profile, versions, serving, timeouts.
        dry_run: print the plan only; touch nothing.
        kubectl: how to call kubectl (default: from PATH, aimed at the settings).
        rbac_dir: the project's manifests to apply last.
        apply_deadline: seconds to retry each step through transient failures.
        backoff: waits between apply attempts.
        settle: seconds the pods must stay ready after the install.

    Returns:
        Lines for a person: the checks, what was applied, the final state, next step.

    Raises:
        PrerequisiteError: a blocking check failed (every failure, each with its fix).
        ApplyError: a step failed (kubectl's message).
        PodFailedError, WaitTimeoutError: as `wait_for_pods`.
    """
    kubectl = kubectl or Kubectl.from_settings(settings)
    plan = make_plan(settings, rbac_dir)
    if dry_run:
        try:
            target = kube_target(settings).describe()
        except PrerequisiteError as exc:
            target = f"none yet ({exc})"
        return [plan.describe(kubectl, target), "Dry run: nothing was checked or changed."]
    checks = check_prerequisites(settings, kubectl, needs_docker=not settings.pipeline_image)
    for check in checks:
        (log.info if check.ok or check.blocking else log.warning)("%s", check.line())
    if failed(checks):
        problems = "\n".join(f"  {c.line()}" for c in failed(checks))
        raise PrerequisiteError(f"the cluster is not ready for inv setup:\n{problems}")
    lines = [c.line() for c in checks]
    for step in plan.steps:
        if step.inline:
            count = _apply_inline(kubectl, step, apply_deadline, backoff)
        else:
            count = apply_source(
                kubectl, step.source, step.what, deadline=apply_deadline, backoff=backoff
            )
        lines.append(f"applied {step.what}: {count} objects")
    result = wait_for_pods(settings, plan.namespaces, require_pods=True, settle=settle)
    lines.append(result.summary())
    lines.append("Next: inv build-push (the pipeline image), then inv train --mode cluster.")
    return lines


def _apply_inline(
    kubectl: Kubectl, step: Step, deadline: float, backoff: ApplyBackoff | None
) -> int:
    overriding = replace(kubectl, field_manager=OVERRIDE_FIELD_MANAGER)
    with tempfile.TemporaryDirectory(prefix="hk-apply-") as directory:
        (Path(directory) / "manifest.yaml").write_text(step.inline)
        return apply_source(
            overriding, f"files:{directory}", step.what, deadline=deadline, backoff=backoff
        )
