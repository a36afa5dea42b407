"""How one pod's status is judged (pure: no server)."""

from __future__ import annotations

from kube_support import pod, terminated, waiting

from hello_kubeflow.kube.pods import pod_state


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
