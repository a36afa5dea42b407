"""`inv notebook` in cluster mode against an emulated Kubernetes API over real HTTP.

The Notebook controller is played by `NotebookController`, after the real one
(kubeflow/kubeflow v1.10.0, components/notebook-controller/controllers/
notebook_controller.go, `generateStatefulSet`): for an applied Notebook it
makes the pod `<name>-0` from the Notebook's pod template, labelled
`statefulset=<name>`, `notebook-name=<name>` and with the Notebook's own
labels, `NB_PREFIX=/notebook/<namespace>/<name>` in its environment, replacing
the pod of an earlier spec. The objects we send are checked against the CRD
schemas of kubeflow/manifests 26.03 (`../shared/upstream`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from clock_support import VirtualClock
from crd_support import KUBEFLOW_EXAMPLE, crd_schema, schema_problems
from emulators import ClusterEmulator, is_pod_list, serving, write_kubeconfig
from inv_support import environment_without_settings, run_inv
from kmock._internal import enums

from hello_kubeflow.errors import NotebookError, PrerequisiteError
from hello_kubeflow.notebook.cluster import delete_notebook, open_notebook
from hello_kubeflow.notebook.manifests import NotebookSpec, notebook, pipeline_access
from hello_kubeflow.settings import Settings

NAMESPACE = "kubeflow-user-example-com"
IMAGE = "localhost:5000/hello-kubeflow@sha256:" + "ab" * 32
NEWER = "localhost:5000/hello-kubeflow@sha256:" + "cd" * 32
NOTEBOOKS = "kubeflow.org/v1/notebooks"
PODDEFAULTS = "kubeflow.org/v1alpha1/poddefaults"
CLAIMS = "v1/persistentvolumeclaims"
PODS = "v1/pods"


class NotebookController:
    """Plays the Notebook controller and the kubelet for the pods it makes.

    After an apply, the `pods_after`-th pod list finds the new pod (the ones
    before it see only the earlier pod, if any), in the state `state` names:
    `ready`, `pending` (ContainerCreating), `pull-error` (ImagePullBackOff) or
    `crash-loop` (CrashLoopBackOff, restarted 4 times).
    """

    def __init__(self, state: str = "ready", pods_after: int = 1) -> None:
        self.state = state
        self.pods_after = pods_after
        self.pending: dict[str, Any] | None = None
        self.lists = 0
        self.applied: list[dict[str, Any]] = []

    def __call__(self, emulator: ClusterEmulator, request: Any) -> None:
        if request.resource == kmock.resource(NOTEBOOKS) and request.name:
            if request.action == enums.action.UPDATE:
                self.applied.append(copy.deepcopy(request.data))
                self.pending = copy.deepcopy(request.data)
                self.lists = 0
            return
        if not is_pod_list(request) or self.pending is None:
            return
        self.lists += 1
        if self.lists >= self.pods_after:
            self._make_pod(emulator, self.pending)
            self.pending = None

    def _make_pod(self, emulator: ClusterEmulator, applied: dict[str, Any]) -> None:
        meta = applied["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        spec = copy.deepcopy(applied["spec"]["template"]["spec"])
        container = spec["containers"][0]
        container.setdefault("workingDir", "/home/jovyan")
        container.setdefault(
            "ports", [{"containerPort": 8888, "name": "notebook-port", "protocol": "TCP"}]
        )
        container.setdefault("env", []).append(
            {"name": "NB_PREFIX", "value": f"/notebook/{namespace}/{name}"}
        )
        spec.setdefault("securityContext", {"fsGroup": 100})
        labels = {"statefulset": name, "notebook-name": name, **meta.get("labels", {})}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-0",
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": name,
                        "uid": f"uid-{name}",
                        "controller": True,
                    }
                ],
            },
            "spec": spec,
            "status": _status(container["name"], container["image"], self.state),
        }
        emulator.objects[kmock.resource(PODS), namespace, f"{name}-0"] = pod


def _status(container: str, image: str, state: str) -> dict[str, Any]:
    """A pod status as the kubelet reports it."""
    if state == "ready":
        return {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": container,
                    "image": image,
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-11-30T20:00:00Z"}},
                }
            ],
        }
    reason, message = {
        "pending": ("ContainerCreating", ""),
        "pull-error": (
            "ImagePullBackOff",
            f'Back-off pulling image "{image}": manifest unknown',
        ),
        # the kubelet's message: kubernetes/kubernetes pkg/kubelet/kuberuntime/
        # kuberuntime_manager.go, doBackOff ("back-off %s restarting failed container=%s
        # pod=%s", the pod written by pkg/kubelet/util/format `Pod`: name_namespace(uid))
        "crash-loop": (
            "CrashLoopBackOff",
            f"back-off 40s restarting failed container={container} "
            f"pod={container}-0_{NAMESPACE}(uid-{container}-0)",
        ),
    }[state]
    return {
        "phase": "Pending",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [
            {
                "name": container,
                "image": image,
                "ready": False,
                "restartCount": 4 if state == "crash-loop" else 0,
                "state": {"waiting": {"reason": reason, "message": message}},
            }
        ],
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ClusterEmulator, Settings]]:
    """An emulated cluster with Kubeflow's Notebook and PodDefault types, and settings for it."""
    emulator = ClusterEmulator()
    for resource, kind in (
        (NOTEBOOKS, "Notebook"),
        (PODDEFAULTS, "PodDefault"),
        (CLAIMS, "PersistentVolumeClaim"),
    ):
        emulator.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True)
    with serving(emulator) as url:
        settings = Settings(
            kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", url),
            namespace=NAMESPACE,
            pipeline_image=IMAGE,
            notebook_timeout=10.0,
            output_dir=tmp_path / "outputs",
        )
        yield emulator, settings


def _open(
    emulator: ClusterEmulator,
    settings: Settings,
    controller: NotebookController,
    clock: VirtualClock | None = None,
) -> Any:
    """Open the notebook on a virtual clock: its timeout and crash grace never race the machine."""
    emulator.controllers.append(controller)
    return open_notebook(settings, poll_interval=0.05, clock=clock or VirtualClock())


# ---- the objects, against Kubeflow's CRD schemas


def test_the_notebook_validates_against_the_kubeflow_crd_schema() -> None:
    schema = crd_schema(KUBEFLOW_EXAMPLE, "notebooks.kubeflow.org", "v1")
    spec = NotebookSpec("hello-kubeflow", NAMESPACE, IMAGE, "1", "2Gi", "5Gi")

    assert schema_problems(notebook(spec), schema) == []


def test_the_pipeline_access_poddefault_validates_against_its_crd_schema() -> None:
    schema = crd_schema(KUBEFLOW_EXAMPLE, "poddefaults.kubeflow.org", "v1alpha1")

    assert schema_problems(pipeline_access(NAMESPACE), schema) == []


def test_a_misspelt_field_would_be_caught_by_the_schema_check() -> None:
    """The check itself can fail: an unknown field and a wrong type are reported."""
    schema = crd_schema(KUBEFLOW_EXAMPLE, "notebooks.kubeflow.org", "v1")
    broken = notebook(NotebookSpec("hello-kubeflow", NAMESPACE, IMAGE, "1", "2Gi", "5Gi"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = "Always"
    container["volumeMounts"] = "home"

    problems = schema_problems(broken, schema)

    assert any("imagePullPolicyy" in p for p in problems)
    assert any("volumeMounts" in p for p in problems)


# ---- create, ready, fail fast, delete


def test_a_notebook_is_created_with_its_volume_and_token_and_waited_until_ready(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    emulator, settings = cluster
    controller = NotebookController(pods_after=3)

    server = _open(emulator, settings, controller)

    stored = emulator.stored(NOTEBOOKS, NAMESPACE, "hello-kubeflow")
    assert stored is not None
    assert (
        schema_problems(
            controller.applied[0], crd_schema(KUBEFLOW_EXAMPLE, "notebooks.kubeflow.org", "v1")
        )
        == []
    )
    pod_spec = stored["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["name"] == "hello-kubeflow"
    assert container["image"] == IMAGE
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert container["volumeMounts"] == [{"name": "workspace", "mountPath": "/home/jovyan"}]
    claim = pod_spec["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert emulator.stored(CLAIMS, NAMESPACE, claim) is not None
    assert stored["metadata"]["labels"]["access-ml-pipeline"] == "true"
    poddefault = emulator.stored(PODDEFAULTS, NAMESPACE, "access-ml-pipeline")
    assert poddefault is not None
    assert poddefault["spec"]["selector"]["matchLabels"] == {"access-ml-pipeline": "true"}
    assert server.pod == "hello-kubeflow-0"
    assert server.url == f"http://localhost:7777/notebook/{NAMESPACE}/hello-kubeflow/"
    assert "kubectl port-forward -n istio-system svc/istio-ingressgateway 7777:80" in (
        server.describe()
    )


def test_the_url_goes_through_the_gateway_the_settings_name(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    emulator, settings = cluster

    server = _open(
        emulator,
        settings.replace(gateway_url="https://kubeflow.example.org"),
        NotebookController(),
    )

    assert server.url == f"https://kubeflow.example.org/notebook/{NAMESPACE}/hello-kubeflow/"
    assert server.port_forward == ""


def test_an_existing_poddefault_of_the_profile_is_left_alone(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    emulator, settings = cluster
    theirs = pipeline_access(NAMESPACE)
    theirs["spec"]["desc"] = "the profile's own"
    emulator.objects[kmock.resource(PODDEFAULTS), NAMESPACE, "access-ml-pipeline"] = theirs

    server = _open(emulator, settings, NotebookController())

    kept = emulator.stored(PODDEFAULTS, NAMESPACE, "access-ml-pipeline")
    assert kept is not None and kept["spec"]["desc"] == "the profile's own"
    assert not any("PodDefault" in c for c in server.created)


def test_a_second_run_updates_the_notebook_in_place_and_waits_for_the_new_image(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    emulator, settings = cluster
    controller = NotebookController()
    _open(emulator, settings, controller)
    controller.pods_after = 4  # the old Ready pod is seen three times first

    server = open_notebook(settings.replace(pipeline_image=NEWER), poll_interval=0.05)

    assert len(emulator.live(NOTEBOOKS)) == 1
    stored = emulator.stored(NOTEBOOKS, NAMESPACE, "hello-kubeflow")
    assert stored is not None
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == NEWER
    pod = emulator.stored(PODS, NAMESPACE, server.pod)
    assert pod is not None and pod["spec"]["containers"][0]["image"] == NEWER


def test_a_notebook_whose_image_cannot_be_pulled_fails_at_once_with_the_reason(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    emulator, settings = cluster
    clock = VirtualClock()

    with pytest.raises(NotebookError) as caught:
        _open(
            emulator,
            settings.replace(notebook_timeout=60.0),
            NotebookController("pull-error"),
            clock,
        )

    message = str(caught.value)
    assert f"pod {NAMESPACE}/hello-kubeflow-0 container 'hello-kubeflow'" in message
    assert "ImagePullBackOff" in message
    assert "manifest unknown" in message
    assert clock.now() < 1  # at the first looks, not at the 60 s timeout


def test_a_notebook_crash_looping_past_the_grace_fails_naming_the_setting(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    """HK_WAIT_CRASH_GRACE decides, as in `inv wait` and the deploy: not a restart count."""
    emulator, settings = cluster

    with pytest.raises(NotebookError, match=r"HK_WAIT_CRASH_GRACE=0\.2"):
        _open(
            emulator,
            settings.replace(notebook_timeout=30.0, wait_crash_grace=0.2),
            NotebookController("crash-loop"),
        )


def test_a_notebook_crash_looping_within_the_grace_is_waited_for(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    """Four restarts alone do not fail the wait: the timeout comes first, naming the loop."""
    emulator, settings = cluster

    with pytest.raises(NotebookError) as caught:
        _open(
            emulator,
            settings.replace(notebook_timeout=0.5, wait_crash_grace=60.0),
            NotebookController("crash-loop"),
        )

    message = str(caught.value)
    assert "was not ready within" in message
    assert "CrashLoopBackOff" in message


def test_a_notebook_not_ready_in_time_is_an_error_naming_its_status(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    emulator, settings = cluster

    with pytest.raises(NotebookError) as caught:
        _open(emulator, settings.replace(notebook_timeout=0.5), NotebookController("pending"))

    message = str(caught.value)
    assert "was not ready within 0 s" in message or "within 1 s" in message
    assert "ContainerCreating" in message
    assert f"kubectl describe notebooks -n {NAMESPACE} hello-kubeflow" in message


def test_delete_removes_the_notebook_and_keeps_the_workspace(
    cluster: tuple[ClusterEmulator, Settings],
) -> None:
    emulator, settings = cluster
    _open(emulator, settings, NotebookController())

    removed = delete_notebook(settings)

    assert removed == [f"Notebook {NAMESPACE}/hello-kubeflow"]
    assert emulator.stored(NOTEBOOKS, NAMESPACE, "hello-kubeflow") is None
    assert emulator.stored(CLAIMS, NAMESPACE, "hello-kubeflow-workspace") is not None
    assert delete_notebook(settings) == []


def test_the_kubeflow_namespace_is_refused_naming_the_setting(tmp_path: Path) -> None:
    settings = Settings(pipeline_image=IMAGE, output_dir=tmp_path)

    with pytest.raises(NotebookError, match="HK_NAMESPACE"):
        open_notebook(settings)


def test_an_image_not_pinned_by_digest_is_refused(tmp_path: Path) -> None:
    settings = Settings(
        namespace=NAMESPACE,
        pipeline_image="localhost:5000/hello-kubeflow:latest",
        output_dir=tmp_path,
    )

    with pytest.raises(PrerequisiteError, match="inv build-push"):
        open_notebook(settings)


# ---- the task, as a person runs it


def test_inv_notebook_prints_the_url_and_inv_notebook_delete_removes_it(
    cluster: tuple[ClusterEmulator, Settings], tmp_path: Path
) -> None:
    emulator, settings = cluster
    emulator.controllers.append(NotebookController())
    env = {
        **environment_without_settings(),
        "KUBECONFIG": str(settings.kubeconfig),
        "HK_NAMESPACE": NAMESPACE,
        "HK_PIPELINE_IMAGE": IMAGE,
        "HK_OUTPUT_DIR": str(tmp_path / "outputs"),
        "HK_GATEWAY_URL": "http://localhost:7777",
    }

    opened = run_inv("notebook", "--mode", "cluster", "--cpu", "500m", env=env)
    deleted = run_inv("notebook", "--mode", "cluster", "--delete", env=env)

    assert opened.returncode == 0, opened.stderr
    assert f"open http://localhost:7777/notebook/{NAMESPACE}/hello-kubeflow/" in opened.stdout
    assert deleted.returncode == 0, deleted.stderr
    assert f"removed Notebook {NAMESPACE}/hello-kubeflow (its workspace" in deleted.stdout
    assert emulator.stored(NOTEBOOKS, NAMESPACE, "hello-kubeflow") is None


def test_inv_notebook_with_a_bad_cpu_names_the_option(tmp_path: Path) -> None:
    done = run_inv(
        "notebook",
        "--mode",
        "cluster",
        "--cpu",
        "lots",
        env={**environment_without_settings(), "HK_OUTPUT_DIR": str(tmp_path)},
    )

    assert done.returncode == 1
    assert "--cpu='lots'" in done.stderr
    assert "Traceback" not in done.stderr
