"""What each profile needs from the cluster: CPU, memory, disk (the manifests' own table)."""

from __future__ import annotations

from kubernetes.utils import parse_quantity

from hello_kubeflow.install.components import Manifest, Step, pod_template

# kubeflow/manifests 26.03, README.md, the component table ("rough resource
# requirements ... the maximum of actual usage and configured requests"):
# (CPU millicores, memory Mi, PVC storage GB).
KFP_ROW = (970, 3552, 35)  # "Kubeflow Pipelines" (2.16.0 there; 2.17.0 installs the same parts)
KSERVE_ROW = (600, 1200, 0)  # "KServe" (v0.16.0 there)
CERT_MANAGER_ROW = (3, 128, 0)  # "Cert Manager"
PLATFORM_TOTAL = (4380, 12341, 65)  # "Total" (every component of the table)
PLATFORM_RECOMMENDED = "16+ GB of RAM, 8 CPU cores (README, Prerequisites)"


def requirements_lines(steps: tuple[Step, ...], profile: str) -> list[str]:
    """What the install's `steps` need, from the manifests' table and the manifests themselves."""
    rows: list[tuple[str, tuple[int, int, int]]] = []
    for step in steps:
        folder = step.component.folder
        if folder.startswith("kubeflow-manifests-") and step.component.select is None:
            rows.append((f"{step.component.title} (table total)", PLATFORM_TOTAL))
        elif folder.startswith("kubeflow-pipelines-"):
            rows.append((step.component.title, KFP_ROW))
        elif folder.startswith("kserve-"):
            rows.append((step.component.title, KSERVE_ROW))
        elif folder.startswith("kubeflow-manifests-"):
            rows.append((step.component.title, CERT_MANAGER_ROW))
        else:  # not in the table: the requests of its own pod templates
            cpu, memory = _requests(list(step.objects))
            rows.append((f"{step.component.title} (its pods' requests)", (cpu, memory, 0)))
    lines = ["resources (kubeflow/manifests 26.03 README table: CPU, memory, PVC storage):"]
    lines.extend(f"  {name}: {c}m CPU, {m}Mi memory, {d} GB disk" for name, (c, m, d) in rows)
    total = tuple(sum(r[1][i] for r in rows) for i in range(3))
    lines.append(f"  total: {total[0]}m CPU, {total[1]}Mi memory, {total[2]} GB disk")
    claimed = sum(_pvc_gib(o) for s in steps for o in s.objects)
    lines.append(f"  the manifests' PersistentVolumeClaims ask for {claimed:g} GiB")
    if profile == "full":
        lines.append(f"  upstream recommends {PLATFORM_RECOMMENDED}")
    return lines


def _requests(objects: list[Manifest]) -> tuple[int, int]:
    cpu = memory = 0.0
    for obj in objects:
        if obj.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        replicas = int((obj.get("spec") or {}).get("replicas") or 1)
        for container in pod_template(obj).get("containers") or []:
            requests = (container.get("resources") or {}).get("requests") or {}
            cpu += replicas * quantity(str(requests.get("cpu", "0"))) * 1000
            memory += replicas * quantity(str(requests.get("memory", "0"))) / 1024**2
    return round(cpu), round(memory)


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number: `3500m` -> 3.5, `8Gi` -> 8589934592.0."""
    return float(parse_quantity(text or "0"))


def _pvc_gib(obj: Manifest) -> float:
    if obj.get("kind") != "PersistentVolumeClaim":
        return 0.0
    storage = (((obj.get("spec") or {}).get("resources") or {}).get("requests") or {}).get(
        "storage", "0"
    )
    return quantity(str(storage)) / 1024**3
