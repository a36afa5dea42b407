"""What each profile installs: upstream components, their rendered files, and where they come from.

One folder of rendered YAML per component, named after the upstream project and
release (`kubeflow-pipelines-2.17.0/`), as `inv setup --render DIR` writes it.
Sources: kubeflow/pipelines 2.17.0 `manifests/kustomize/README.md` (not `env/dev`:
`:master` images and a GCP-only agent); kserve/kserve v0.20.0
`hack/release/generate-install.sh`; SeldonIO/seldon-core v1.17.1 `operator/config/lite`;
kubeflow/manifests 26.03 `example/`, whose `common/cert-manager` (v1.19.4) also serves
KServe's webhooks in the pipelines profile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hello_kubeflow.errors import ManifestError
from hello_kubeflow.settings import Profile, Serving, Settings

Manifest = dict[str, Any]
"""One Kubernetes object as YAML decodes it."""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML has it: the platform's 9 MB render loads in seconds."""
KFP_KUSTOMIZE = "github.com/kubeflow/pipelines/manifests/kustomize"
KSERVE_RELEASES = "https://github.com/kserve/kserve/releases/download"
SELDON_LITE = "github.com/SeldonIO/seldon-core/operator/config/lite"
KUBEFLOW_EXAMPLE = "github.com/kubeflow/manifests/example"
PLATFORM_KUSTOMIZE = "5.8.1"
"""The kustomize the platform's example is built with: kubeflow/manifests 26.03 pins it in
`tests/install_KinD_create_KinD_cluster_install_kustomize.sh` (`KUSTOMIZE_VERSION`), the
script its README's "Install with a single command" prerequisites name."""


@dataclass(frozen=True)
class RenderedFile:
    """One file of a component: a kustomize source or a URL to download (`kind` says which).

    `kustomize` is the kustomize release upstream builds it with ("": none named).
    """

    name: str
    source: str
    kind: str = "kustomize"
    kustomize: str = ""


@dataclass(frozen=True)
class Component:
    """One upstream component: a folder of rendered files, applied as one step.

    Attributes:
        title: for a person ("Kubeflow Pipelines 2.17.0").
        folder: its folder under the manifests directory.
        files: its files, in apply order.
        namespaces: where its pods run (waited for); empty: wait for all.
        select: keeps only some objects of the files (a part of a larger render).
    """

    title: str
    folder: str
    files: tuple[RenderedFile, ...]
    namespaces: tuple[str, ...] = ()
    select: Callable[[Manifest], bool] | None = None

    def paths(self, root: Path) -> list[Path]:
        """Where its files are under `root`."""
        return [root / self.folder / f.name for f in self.files]

    def manifests(self, root: Path) -> list[Manifest]:
        """Every object of its files under `root`, in order (selected); as `read_manifests`."""
        objects = [obj for path in self.paths(root) for obj in read_manifests(path)]
        return [obj for obj in objects if self.select is None or self.select(obj)]


@dataclass(frozen=True)
class Step:
    """One component's objects to apply (upstream's, changed as each of `notes` says)."""

    component: Component
    objects: tuple[Manifest, ...]
    notes: tuple[str, ...]


def _is_cert_manager(obj: Manifest) -> bool:
    """The objects of the platform's `common/cert-manager` within its rendered example."""
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get("app.kubernetes.io/instance") == "cert-manager":
        return True
    if obj.get("kind") == "Namespace":
        return meta.get("name") == "cert-manager"
    return meta.get("namespace") == "cert-manager"


def _v(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


def kubeflow_pipelines(version: str) -> Component:
    """Kubeflow Pipelines standalone, the manifests README's path for any cluster."""
    return Component(
        f"Kubeflow Pipelines {version}",
        f"kubeflow-pipelines-{version}",
        tuple(
            RenderedFile(f"{part.replace('/', '-')}.yaml", f"{KFP_KUSTOMIZE}/{part}?ref={version}")
            for part in ("cluster-scoped-resources", "env/platform-agnostic")
        ),
        ("kubeflow",),
    )


def seldon_core(version: str) -> Component:
    """The Seldon Core v1 operator (it makes its own webhook certificate)."""
    return Component(
        f"Seldon Core {_v(version)}",
        f"seldon-core-{_v(version)}",
        (RenderedFile("operator-config-lite.yaml", f"{SELDON_LITE}?ref={_v(version)}"),),
        ("seldon-system",),
    )


def kserve(version: str) -> Component:
    """KServe from its release files: CRDs, the controller, the cluster serving runtimes."""
    tag = _v(version)
    return Component(
        f"KServe {tag}",
        f"kserve-{tag}",
        tuple(
            RenderedFile(name, f"{KSERVE_RELEASES}/{tag}/{name}", "download")
            for name in ("kserve-crds.yaml", "kserve.yaml", "kserve-cluster-resources.yaml")
        ),
        ("kserve",),
    )


def kubeflow_platform(version: str) -> Component:
    """The whole Kubeflow platform: the manifests' example install."""
    return Component(
        f"Kubeflow platform {version}",
        f"kubeflow-manifests-{version}",
        (
            RenderedFile(
                "example.yaml", f"{KUBEFLOW_EXAMPLE}?ref={version}", kustomize=PLATFORM_KUSTOMIZE
            ),
        ),
    )


def cert_manager(kubeflow_version: str) -> Component:
    """cert-manager as the Kubeflow platform ships it (KServe's webhooks need it)."""
    platform = kubeflow_platform(kubeflow_version)
    return Component(
        f"cert-manager (Kubeflow platform {kubeflow_version})",
        platform.folder,
        platform.files,
        ("cert-manager",),
        _is_cert_manager,
    )


def resolve_serving(serving: Serving, profile: Profile) -> str:
    """`seldon` or `kserve`: `auto` is Seldon Core for `pipelines`, KServe for `full`."""
    if serving != "auto":
        return serving
    return "kserve" if profile == "full" else "seldon"


def components_for(settings: Settings) -> list[Component]:
    """The components of the settings' profile and serving system, in install order."""
    serving = resolve_serving(settings.serving, settings.profile)
    if settings.profile == "full":  # the platform includes KServe
        found = [kubeflow_platform(settings.kubeflow_version)]
        return [*found, seldon_core(settings.seldon_version)] if serving == "seldon" else found
    found = [kubeflow_pipelines(settings.kfp_version)]
    if serving == "seldon":
        return [*found, seldon_core(settings.seldon_version)]
    return [*found, cert_manager(settings.kubeflow_version), kserve(settings.kserve_version)]


def read_manifests(path: Path) -> list[Manifest]:
    """The objects of one rendered YAML file, in order (empty documents skipped).

    Raises:
        ManifestError: the file is missing, is not YAML, or holds a non-object.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(
            f"{path} is missing. HK_MANIFESTS_DIR must hold the rendered manifests of the "
            "profile, one folder per component: write them with `inv setup --render DIR` "
            "on a machine with network access (or unset HK_MANIFESTS_DIR)."
        ) from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from None
    try:
        return list(_objects(yaml.load_all(text, Loader=_LOADER), str(path)))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path} is not valid YAML: {exc}") from None


def _objects(documents: Iterator[Any], where: str) -> Iterator[Manifest]:
    for number, doc in enumerate(documents, 1):
        if doc is None:
            continue
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            yield from _objects(iter(doc.get("items") or []), where)
            continue
        meta = doc.get("metadata") if isinstance(doc, Mapping) else None
        if not (isinstance(meta, Mapping) and doc.get("apiVersion") and doc.get("kind")):
            raise ManifestError(
                f"{where}, document {number}: not a Kubernetes object (apiVersion, kind and "
                "metadata.name are required). Render the manifests again with "
                "`inv setup --render DIR`."
            )
        if not meta.get("name"):
            raise ManifestError(f"{where}, document {number}: a {doc['kind']} without a name")
        yield dict(doc)


def pod_template(workload: Manifest) -> Manifest:
    """The pod spec a workload's template holds (a CronJob's, in its job template)."""
    spec = workload.get("spec") or {}
    if workload.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return (spec.get("template") or {}).get("spec") or {}  # type: ignore[no-any-return]


def object_name(obj: Manifest) -> str:
    """`Kind namespace/name` (or `Kind name`), for messages."""
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"
