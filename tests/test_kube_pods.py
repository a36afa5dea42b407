"""How one pod's status is judged (pure: no server)."""

from __future__ import annotations

from typing import Any

import pytest
from kube_support import pod, terminated, unschedulable, waiting

from hello_kubeflow.kube.pods import PodState, pod_state


def test_a_terminating_pod_is_not_ready() -> None:
    terminating = pod("kubeflow", "old", phase="Running", ready=True)
    terminating["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"

    assert pod_state(terminating, 5).reason == "Terminating"


def test_a_running_pod_whose_readiness_probe_fails_says_how_many_containers_are_ready() -> None:
    state = pod_state(pod("kubeflow", "api", phase="Running", containers=("api", "proxy")), 5)

    assert (state.ready, state.reason, state.message) == (False, "Running", "0/2 containers ready")


def test_an_init_container_in_crash_loop_past_the_limit_is_fatal() -> None:
    crashing = pod("kubeflow", "db")
    crashing["status"]["initContainerStatuses"] = [
        waiting("wait-for-mysql", "CrashLoopBackOff", restarts=6)
    ]

    state = pod_state(crashing, 5)

    assert state.fatal and state.container == "wait-for-mysql"
    assert "restarted 6 times; last exit code 1 (Error)" in state.message
    assert "kubectl logs -n kubeflow db -c wait-for-mysql --previous" in state.explain()


def test_a_bare_failed_pod_is_fatal_with_its_exit_code() -> None:
    state = pod_state(pod("default", "once", phase="Failed", statuses=[terminated("main", 2)]), 5)

    assert state.fatal and state.reason == "Error (exit 2)" and state.container == "main"


def test_a_local_image_that_may_not_be_pulled_is_fatal_with_the_kind_hint() -> None:
    never = [waiting("main", "ErrImageNeverPull", 'Container image "hk:dev" is not present')]

    state = pod_state(pod("kubeflow", "train", statuses=never), 5)

    assert state.fatal
    assert "kind load docker-image" in state.explain()


def test_a_pending_pod_without_container_statuses_reports_its_phase() -> None:
    state = pod_state({"metadata": {"namespace": "a", "name": "b"}}, 5)

    assert (state.ready, state.reason, state.fatal) == (False, "Pending", False)


def test_a_container_that_exited_non_zero_is_fatal_only_if_the_pod_never_restarts() -> None:
    """restartPolicy decides: one failed attempt during an install is not the end."""
    exited = [terminated("main", 1)]

    def running(policy: str) -> dict[str, object]:
        return pod("kubeflow", "api", phase="Running", statuses=exited, restart_policy=policy)

    restarting, on_failure, never = running("Always"), running("OnFailure"), running("Never")

    assert not pod_state(restarting, 5).fatal
    assert not pod_state(on_failure, 5).fatal
    assert pod_state(never, 5).fatal and pod_state(never, 5).reason == "Error (exit 1)"


_IMAGE_FIX = (
    "check the image name and tag, and that the cluster can pull it (registry credentials in "
    "imagePullSecrets; for a local image, `kind load docker-image` or `minikube image load`)"
)


def _with(statuses: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return pod("kf", "p", statuses=statuses, **more)


@pytest.mark.parametrize(
    ("given", "explained"),
    [
        (
            _with([waiting("main", "ImagePullBackOff", "not found")]),
            f"pod kf/p container 'main' is in ImagePullBackOff: not found. This will not heal "
            f"by waiting; {_IMAGE_FIX}.",
        ),
        (
            _with([{**waiting("main", "ErrImagePull"), "image": "example.com/main:1"}]),
            "pod kf/p container 'main' is in ErrImagePull: cannot pull image example.com/main:1. "
            f"This will not heal by waiting; {_IMAGE_FIX}.",
        ),
        (
            _with([waiting("main", "InvalidImageName", "couldn't parse image: 503")]),
            "pod kf/p container 'main' is in InvalidImageName: couldn't parse image: 503. "
            f"This will not heal by waiting; {_IMAGE_FIX}.",
        ),
        (
            _with([waiting("main", "CreateContainerConfigError", 'secret "s3" not found')]),
            "pod kf/p container 'main' is in CreateContainerConfigError: secret \"s3\" not found. "
            "This will not heal by waiting; a Secret or ConfigMap it references is missing: "
            "kubectl describe pod -n kf p.",
        ),
        (
            _with([waiting("main", "RunContainerError", "exec format error")]),
            "pod kf/p container 'main' is in RunContainerError: exec format error. This will not "
            "heal by waiting; the runtime could not start it: kubectl describe pod -n kf p.",
        ),
        (
            _with([waiting("main", "CrashLoopBackOff", "back-off", restarts=5)]),
            "pod kf/p container 'main' is in CrashLoopBackOff: restarted 5 times; last exit code "
            "1 (Error). This will not heal by waiting; see why it exits: "
            "kubectl logs -n kf p -c main --previous.",
        ),
        (
            _with([terminated("main", 3, "OOMKilled")], phase="Running", restart_policy="Never"),
            "pod kf/p container 'main' is in Error (exit 3): OOMKilled. This will not heal by "
            "waiting; see why it failed: kubectl logs -n kf p -c main.",
        ),
        (
            pod("kf", "p", phase="Failed", statuses=[terminated("main", 0)], reason="Evicted"),
            "pod kf/p is in Evicted. This will not heal by waiting; "
            "see kubectl describe pod -n kf p.",
        ),
    ],
    ids=["pull", "pull-no-message", "bad-name", "config", "runtime", "crash", "exit", "evicted"],
)
def test_a_fatal_pod_is_explained_with_its_container_detail_and_fix(
    given: dict[str, Any], explained: str
) -> None:
    state = pod_state(given, 5)

    assert (state.fatal, state.ready, state.counted) == (True, False, True)
    assert state.explain() == explained


@pytest.mark.parametrize(
    "message",
    ["429 Too Many Requests", "toomanyrequests: rate limit", "dial tcp: i/o timeout", "502"],
)
def test_a_pull_the_registry_may_answer_next_time_is_waited_for(message: str) -> None:
    state = pod_state(_with([waiting("main", "ErrImagePull", message)]), 5)

    assert not state.fatal
    assert (state.reason, state.message, state.container) == ("ErrImagePull", message, "main")


def test_a_crash_loop_below_the_limit_is_waited_for_with_its_restart_count() -> None:
    state = pod_state(_with([waiting("main", "CrashLoopBackOff", "back-off", restarts=4)]), 5)

    assert not state.fatal and state.restarts == 4
    assert (state.reason, state.message) == ("CrashLoopBackOff", "4 restarts; back-off")


def test_a_failed_pod_of_a_job_is_left_to_its_job() -> None:
    failed = pod("kf", "p", phase="Failed", statuses=[terminated("main", 2)], owner=("Job", "j"))

    state = pod_state(failed, 5)

    assert (state.fatal, state.counted, state.job, state.ready) == (False, True, "j", False)
    assert (state.reason, state.message, state.container) == ("Failed", "Error", "main")


def test_an_evicted_pod_of_a_replica_set_no_longer_counts() -> None:
    evicted = pod("kf", "p", phase="Failed", reason="Evicted", owner=("ReplicaSet", "rs"))

    state = pod_state(evicted, 5)

    assert (state.fatal, state.counted, state.reason, state.ready) == (
        False,
        False,
        "Evicted",
        False,
    )


def test_an_owner_that_does_not_control_the_pod_is_not_its_job() -> None:
    failed = pod("kf", "p", phase="Failed", statuses=[terminated("main", 2)], owner=("Job", "j"))
    failed["metadata"]["ownerReferences"][0]["controller"] = False

    state = pod_state(failed, 5)

    assert state.fatal and state.job == ""


def test_ready_running_and_succeeded_pods_are_ready() -> None:
    assert pod_state(pod("kf", "p", phase="Running", ready=True), 5).ready
    assert pod_state(pod("kf", "p", phase="Succeeded"), 5).reason == "Succeeded"


def test_an_unschedulable_pod_says_why() -> None:
    state = pod_state(pod("kf", "p", conditions=unschedulable("0/1 nodes: Insufficient cpu")), 5)

    assert (state.reason, state.message, state.fatal) == (
        "Unschedulable",
        "0/1 nodes: Insufficient cpu",
        False,
    )


@pytest.mark.parametrize(
    ("status", "explained"),
    [
        (
            {},
            "pod kf/p is in Failed. This will not heal by waiting; "
            "see kubectl describe pod -n kf p.",
        ),
        (
            # kubernetes/kubernetes v1.34 pkg/kubelet/eviction: eviction_manager.go `Reason =
            # "Evicted"`, helpers.go `nodeLowMessageFmt = "The node was low on resource: %v. "`.
            {"reason": "Evicted", "message": "The node was low on resource: memory."},
            "pod kf/p is in Evicted: The node was low on resource: memory. This will not heal "
            "by waiting; see kubectl describe pod -n kf p.",
        ),
    ],
    ids=["bare", "evicted"],
)
def test_a_failed_pod_without_a_failed_container_is_explained_by_its_status(
    status: dict[str, str], explained: str
) -> None:
    """The status's own message ends with a full stop: the explanation has one, not two."""
    failed = pod("kf", "p", phase="Failed", statuses=[terminated("main", 0)])
    failed["status"].update(status)

    assert pod_state(failed, 5).explain() == explained


def test_a_failed_container_is_explained_by_its_own_message_first() -> None:
    exited = terminated("main", 1)
    exited["state"]["terminated"]["message"] = "model.joblib not found"
    failed = pod("kf", "p", phase="Failed", statuses=[exited])

    state = pod_state(failed, 5)

    assert (state.reason, state.message, state.container) == (
        "Error (exit 1)",
        "model.joblib not found",
        "main",
    )


def test_a_job_that_gave_up_is_explained_with_the_job_to_describe() -> None:
    state = PodState("kf", "setup-1", False, "JobFailed", "BackoffLimitExceeded", job="setup")

    assert state.explain() == (
        "pod kf/setup-1 is in JobFailed: BackoffLimitExceeded. This will not heal by waiting; "
        "see kubectl describe job -n kf setup."
    )


def _judged(given: dict[str, Any]) -> tuple[object, ...]:
    state = pod_state(given, 5)
    return (state.ready, state.reason, state.message, state.container, state.fatal, state.restarts)


def _conditioned(*conditions: dict[str, str]) -> dict[str, Any]:
    return pod("kf", "p", conditions=list(conditions))


def _pending_with(**status: str) -> dict[str, Any]:
    given = pod("kf", "p")
    given["status"].update(status)
    return given


def _terminating() -> dict[str, Any]:
    given = pod("kf", "p", phase="Running", ready=True)
    given["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return given


def _exited(code: int, **detail: str) -> dict[str, Any]:
    container = terminated("main", code)
    container["state"]["terminated"] = {"exitCode": code, **detail}
    return pod("kf", "p", phase="Running", statuses=[container], restart_policy="Never")


def _some_ready(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    return pod("kf", "p", phase="Running", containers=("api", "proxy"), statuses=statuses)


_RUNNING = {"name": "api", "ready": True, "restartCount": 0, "state": {"running": {}}}
_STARTING = {**_RUNNING, "name": "proxy", "ready": False}


@pytest.mark.parametrize(
    ("given", "judged"),
    [
        (_terminating(), (False, "Terminating", "", "", False, 0)),
        (pod("kf", "p", phase="Succeeded"), (True, "Succeeded", "", "", False, 0)),
        (pod("kf", "p", phase="Running", ready=True), (True, "Running", "", "", False, 0)),
        (
            _conditioned({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}),
            (False, "Unschedulable", "", "", False, 0),
        ),
        (  # staging/src/k8s.io/api/core/v1/types.go (v1.34) `PodReasonSchedulingGated`
            _conditioned({"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}),
            (False, "Pending", "", "", False, 0),
        ),
        (
            _pending_with(message="waiting for a volume"),
            (False, "Pending", "waiting for a volume", "", False, 0),
        ),
        (_pending_with(reason="NodeAffinity"), (False, "Pending", "NodeAffinity", "", False, 0)),
        (
            pod("kf", "p", statuses=[waiting("main", "ContainerCreating")]),
            (False, "ContainerCreating", "", "main", False, 0),
        ),
        (  # a waiting reason with no rule of its own: pkg/kubelet/kubelet_pods.go (v1.34)
            # "Container state reason list" `PodInitializing`
            pod(
                "kf",
                "p",
                statuses=[{"name": "main", "state": {"waiting": {"reason": "PodInitializing"}}}],
            ),
            (False, "PodInitializing", "", "main", False, 0),
        ),
        (
            pod("kf", "p", statuses=[waiting("main", "CrashLoopBackOff", restarts=2)]),
            (False, "CrashLoopBackOff", "2 restarts", "main", False, 2),
        ),
        (
            pod(
                "kf",
                "p",
                statuses=[{**waiting("main", "CrashLoopBackOff", restarts=7), "lastState": {}}],
            ),
            (False, "CrashLoopBackOff", "restarted 7 times", "main", True, 7),
        ),
        (_exited(2), (False, "Error (exit 2)", "", "main", True, 0)),
        (
            _exited(2, message="no model", reason="Error"),
            (False, "Error (exit 2)", "no model", "main", True, 0),
        ),
        (_exited(0, reason="Completed"), (False, "Running", "0/1 containers ready", "", False, 0)),
        (
            _some_ready([_RUNNING, _STARTING]),
            (False, "Running", "1/2 containers ready", "", False, 0),
        ),
        (_some_ready([_STARTING]), (False, "Running", "0/2 containers ready", "", False, 0)),
    ],
    ids=[
        "terminating",
        "succeeded",
        "ready",
        "unschedulable",
        "gated",
        "pending-message",
        "pending-reason",
        "creating",
        "waiting-without-message",
        "crash-below-limit",
        "crash-no-last-state",
        "exit-bare",
        "exit-message",
        "exit-zero",
        "one-of-two-ready",
        "one-status-of-two",
    ],
)
def test_each_pod_state_is_judged_whole(given: dict[str, Any], judged: tuple[object, ...]) -> None:
    """(ready, reason, message, container, fatal, restarts): what the wait and `inv status` show."""
    assert _judged(given) == judged


def test_a_job_pod_that_exited_is_left_to_its_job_even_when_it_never_restarts() -> None:
    job_pod = _exited(1)
    job_pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "j", "controller": True}]

    state = pod_state(job_pod, 5)

    assert (state.fatal, state.job) == (False, "j")
