"""wait_for_pods and cluster_status against kmock's Kubernetes emulator over real HTTP."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from clock_support import VirtualClock
from emulators import RunningCluster, is_pod_list, is_pod_watch, settings_api
from kube_support import (
    pod,
    ready_status,
    status,
    terminated,
    unschedulable,
    waiting,
)

from hello_kubeflow.errors import ClusterError, PodFailedError, WaitTimeoutError
from hello_kubeflow.kube.feed import FeedMessage
from hello_kubeflow.kube.pods import PodState
from hello_kubeflow.kube.report import Snapshot
from hello_kubeflow.kube.wait import (
    CrashJudge,
    PodTracker,
    WaitResult,
    _refused,
    _timed_out,
    cluster_status,
    last_logs,
    poll_until,
    wait_for_pods,
)
from hello_kubeflow.retry import Backoff
from hello_kubeflow.settings import Settings

FAST = Backoff(initial=0.05, maximum=0.2)


@pytest.fixture
def cluster() -> Iterator[RunningCluster]:
    """A fresh emulated API server on a free port."""
    with RunningCluster() as emulator:
        yield emulator


@pytest.fixture
def settings(cluster: RunningCluster, tmp_path: Path) -> Settings:
    """Settings whose kubeconfig points at the emulator."""
    return cluster.settings(tmp_path)


@pytest.fixture
def later() -> Iterator[Callable[[float, Callable[[], Any]], None]]:
    """Run something after a delay in another thread (the kubelet acting meanwhile)."""
    timers: list[threading.Timer] = []

    def schedule(delay: float, action: Callable[[], Any]) -> None:
        timer = threading.Timer(delay, action)
        timers.append(timer)
        timer.start()

    yield schedule
    for timer in timers:
        timer.cancel()
        timer.join(5)


def wait(
    settings: Settings,
    timeout: float = 20.0,
    namespaces: Sequence[str] | None = None,
    **options: Any,
) -> WaitResult:
    namespaces = settings.wait_namespaces if namespaces is None else namespaces
    grace = settings.wait_crash_grace
    return wait_for_pods(
        settings_api(settings), namespaces, timeout, grace, backoff=FAST, **options
    )


def event(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": body}


def row(table: str, pod_name: str) -> list[str]:
    """The cells of the table row about `pod_name` (the last cell, WHY, kept whole)."""
    line = next(line for line in table.splitlines() if f" {pod_name} " in line)
    return line.split(maxsplit=4)


# ---- success


def test_returns_when_every_pod_is_already_ready(
    cluster: RunningCluster, settings: Settings
) -> None:
    cluster.add(pod("kubeflow", "api", phase="Running", ready=True))
    cluster.add(pod("kubeflow", "ui", phase="Running", ready=True))
    cluster.add(pod("seldon-system", "operator", phase="Running", ready=True))

    result = wait(settings)

    assert (result.snapshot.ready, result.snapshot.total) == (3, 3)
    assert result.snapshot.per_namespace() == {"kubeflow": (2, 2), "seldon-system": (1, 1)}


def test_waits_while_pods_become_ready_one_by_one(
    cluster: RunningCluster, settings: Settings, later: Callable[..., None]
) -> None:
    names = ["mysql", "minio", "api"]
    for name in names:
        cluster.add(pod("kubeflow", name, statuses=[waiting("main", "ContainerCreating")]))
    for index, name in enumerate(names):
        later(
            0.2 * (index + 1),
            lambda name=name: cluster.set_status("kubeflow", name, ready_status()),
        )

    result = wait(settings)

    assert result.snapshot.ready == 3


def test_includes_pods_that_appear_while_waiting(
    cluster: RunningCluster, settings: Settings, later: Callable[..., None]
) -> None:
    cluster.add(pod("kubeflow", "first"))
    made_ready: list[str] = []

    def second_pod_appears_then_everything_gets_ready() -> None:
        cluster.add(pod("kubeflow", "second"))
        cluster.set_status("kubeflow", "first", ready_status())
        time.sleep(0.3)
        made_ready.append("second")
        cluster.set_status("kubeflow", "second", ready_status())

    later(0.2, second_pod_appears_then_everything_gets_ready)
    result = wait(settings)

    assert made_ready == ["second"]  # it did not return while "second" was pending
    assert (result.snapshot.ready, result.snapshot.total) == (2, 2)


def test_succeeded_pods_count_as_ready(cluster: RunningCluster, settings: Settings) -> None:
    cluster.add(pod("kubeflow", "migrate-db", phase="Succeeded"))
    cluster.add(pod("kubeflow", "api", phase="Running", ready=True))

    assert wait(settings).snapshot.ready == 2


def test_waits_only_for_the_namespaces_asked_for(
    cluster: RunningCluster, settings: Settings
) -> None:
    cluster.add(pod("kubeflow", "api", phase="Running", ready=True))
    cluster.add(pod("elsewhere", "stuck", statuses=[waiting("main", "ContainerCreating")]))

    result = wait(settings, namespaces=["kubeflow"])

    assert result.snapshot.per_namespace() == {"kubeflow": (1, 1)}


def test_with_require_pods_an_empty_namespace_is_not_done(
    cluster: RunningCluster, settings: Settings, later: Callable[..., None]
) -> None:
    later(0.3, lambda: cluster.add(pod("kubeflow", "api", phase="Running", ready=True)))

    result = wait(settings, namespaces=["kubeflow"], require_pods=True)

    assert result.snapshot.per_namespace() == {"kubeflow": (1, 1)}


# ---- fail fast on what will not heal

BROKEN = {
    "ImagePullBackOff": dict(
        statuses=[waiting("api", "ImagePullBackOff", 'Back-off pulling image "nope:1"')]
    ),
    "ErrImagePull": dict(statuses=[waiting("api", "ErrImagePull", "manifest unknown")]),
    "InvalidImageName": dict(
        statuses=[waiting("api", "InvalidImageName", 'couldn\'t parse image "A:b:c"')]
    ),
    "CreateContainerConfigError": dict(
        statuses=[waiting("api", "CreateContainerConfigError", 'secret "mysql-secret" not found')]
    ),
    "RunContainerError": dict(statuses=[waiting("api", "RunContainerError", "exec: not found")]),
    "Error (exit 3)": dict(phase="Running", statuses=[terminated("api", 3)]),
}


@pytest.mark.parametrize("reason", list(BROKEN))
def test_fails_at_once_naming_pod_container_and_reason(
    reason: str, cluster: RunningCluster, settings: Settings, later: Callable[..., None]
) -> None:
    cluster.add(pod("kubeflow", "ml-pipeline", containers=("api",), restart_policy="Never"))
    later(
        0.2,
        lambda: cluster.set_status(
            "kubeflow", "ml-pipeline", status(containers=("api",), **BROKEN[reason])
        ),
    )

    with pytest.raises(PodFailedError) as failed:
        wait(settings, timeout=60)  # a PodFailedError, not a WaitTimeoutError: it did not wait

    message = str(failed.value)
    assert "kubeflow/ml-pipeline" in message
    assert "container 'api'" in message
    assert reason in message


def test_a_rate_limited_image_pull_keeps_waiting(
    cluster: RunningCluster, settings: Settings, later: Callable[..., None]
) -> None:
    limited = [waiting("main", "ImagePullBackOff", "429 Too Many Requests: toomanyrequests")]
    cluster.add(pod("kubeflow", "api", statuses=limited))
    later(0.3, lambda: cluster.set_status("kubeflow", "api", ready_status()))

    assert wait(settings).snapshot.ready == 1


def test_a_failed_pod_of_a_job_that_then_succeeded_does_not_block(
    cluster: RunningCluster, settings: Settings
) -> None:
    job = ("Job", "create-buckets")
    cluster.add(
        pod(
            "kubeflow",
            "create-buckets-a",
            phase="Failed",
            owner=job,
            statuses=[terminated("main", 1)],
        )
    )
    cluster.add(pod("kubeflow", "create-buckets-b", phase="Succeeded", owner=job))
    cluster.add(pod("kubeflow", "api", phase="Running", ready=True))

    result = wait(settings)

    assert (result.snapshot.ready, result.snapshot.total) == (2, 2)


def test_a_failed_pod_of_a_job_retrying_in_a_new_pod_does_not_count(
    cluster: RunningCluster, settings: Settings
) -> None:
    """One sibling still trying is enough: the Job (still active) decides, not the failed pod."""
    job = ("Job", "create-buckets")
    failed = [terminated("main", 1)]
    cluster.add(pod("kubeflow", "create-buckets-a", phase="Failed", owner=job, statuses=failed))
    cluster.add(pod("kubeflow", "create-buckets-b", phase="Failed", owner=job, statuses=failed))
    cluster.add(pod("kubeflow", "create-buckets-c", phase="Running", ready=True, owner=job))
    # batch/v1 JobStatus while it retries: `active` pods, no Complete/Failed condition
    # (k8s.io/api batch/v1 types.go, JobStatus: Complete/Failed come only at the end).
    active_job = {
        "metadata": {"name": "create-buckets", "namespace": "kubeflow"},
        "status": {"active": 1, "failed": 2},
    }
    cluster.put_object("batch/v1/jobs", "kubeflow", "create-buckets", active_job)

    result = wait(settings, timeout=5.0, clock=VirtualClock())

    assert (result.snapshot.ready, result.snapshot.total) == (1, 1)


def test_a_failed_pod_of_a_job_that_gave_up_fails(
    cluster: RunningCluster, settings: Settings
) -> None:
    job = ("Job", "create-buckets")
    cluster.add(
        pod(
            "kubeflow",
            "create-buckets-a",
            phase="Failed",
            owner=job,
            statuses=[terminated("main", 1)],
        )
    )
    failed_job = {
        "metadata": {"name": "create-buckets", "namespace": "kubeflow"},
        "status": {
            "failed": 4,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "reached limit",
                }
            ],
        },
    }
    cluster.put_object("batch/v1/jobs", "kubeflow", "create-buckets", failed_job)

    with pytest.raises(PodFailedError, match="BackoffLimitExceeded") as failed:
        wait(settings)

    assert "kubeflow/create-buckets-a" in str(failed.value)


def test_an_evicted_pod_replaced_by_its_replicaset_does_not_block(
    cluster: RunningCluster, settings: Settings
) -> None:
    owner = ("ReplicaSet", "api-5d4f")
    cluster.add(pod("kubeflow", "api-5d4f-old", phase="Failed", owner=owner, reason="Evicted"))
    cluster.add(pod("kubeflow", "api-5d4f-new", phase="Running", ready=True, owner=owner))

    assert wait(settings).snapshot.total == 1


# ---- waiting until the deadline


def test_unschedulable_pods_are_reported_with_the_schedulers_message_until_the_timeout(
    cluster: RunningCluster, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = "0/1 nodes are available: 1 Insufficient cpu."
    cluster.add(pod("kubeflow", "big", conditions=unschedulable(scheduler)))
    caplog.set_level(logging.INFO, logger="hello_kubeflow")

    with pytest.raises(WaitTimeoutError) as timed_out:
        wait(settings, timeout=1.0, progress_interval=0.2, clock=VirtualClock())

    assert row(str(timed_out.value), "big") == ["kubeflow", "big", "Unschedulable", "0", scheduler]
    assert "0/1 pods ready" in caplog.text and "kubeflow/big: Unschedulable" in caplog.text


def test_the_deadline_is_honoured_while_the_watch_is_silent(
    cluster: RunningCluster, settings: Settings
) -> None:
    cluster.add(pod("kubeflow", "slow", statuses=[waiting("main", "ContainerCreating")]))
    clock = VirtualClock()
    started = time.monotonic()

    with pytest.raises(WaitTimeoutError, match="ContainerCreating"):
        wait(settings, timeout=1.0, watch_seconds=30, clock=clock)

    assert clock.now() == pytest.approx(1.0)  # the deadline, by the wait's own clock
    # In real time the wait did not sit out the silent 30 s watch either (a margin of
    # 29 s over the first list: no machine's load reaches it).
    assert time.monotonic() - started < 30


# ---- a flaky API server


def test_retries_lists_answered_500_then_429(cluster: RunningCluster, settings: Settings) -> None:
    cluster.add(pod("kubeflow", "api", phase="Running", ready=True))
    cluster.fail(is_pod_list, 2, 500)
    cluster.fail(is_pod_list, 2, 429, after=2)

    assert wait(settings).snapshot.ready == 1
    assert len(cluster.requests(is_pod_list)) == 5


def test_retries_watches_answered_503(
    cluster: RunningCluster, settings: Settings, later: Callable[..., None]
) -> None:
    cluster.add(pod("kubeflow", "api"))
    cluster.fail(is_pod_watch, 3, 503)
    later(0.5, lambda: cluster.set_status("kubeflow", "api", ready_status()))

    assert wait(settings).snapshot.ready == 1


def test_a_forbidden_list_fails_with_the_fix(cluster: RunningCluster, settings: Settings) -> None:
    cluster.fail(is_pod_list, 1, 403)

    with pytest.raises(ClusterError, match=r"403.*kubectl auth can-i list pods"):
        wait(settings)


def test_an_unreachable_api_server_times_out_saying_so(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
        "current-context: x\n"
    )

    with pytest.raises(WaitTimeoutError, match="did not answer a pod list"):
        wait(Settings(kubeconfig=kubeconfig, kube_request_timeout=1.0), timeout=1.0)


# ---- broken watches: re-list, never miss a change


def test_a_dropped_watch_is_followed_by_a_relist_that_sees_missed_changes(
    cluster: RunningCluster, settings: Settings
) -> None:
    cluster.add(pod("kubeflow", "a"))
    cluster.add(pod("kubeflow", "b"))
    ready_a = pod("kubeflow", "a", phase="Running", ready=True)
    cluster.next_watches(
        (
            cluster.change_silently("kubeflow", "a", {"status": ready_status()}),
            event("MODIFIED", ready_a),
            cluster.change_silently("kubeflow", "b", {"status": ready_status()}),
            # the stream ends here: b's change was never sent; later watches are silent
        )
    )

    result = wait(settings)

    assert (result.snapshot.ready, result.snapshot.total) == (2, 2)
    assert len(cluster.requests(is_pod_list)) == 2  # the first list, and the re-list


@pytest.mark.parametrize(
    ("code", "reason"), [(410, "Expired"), (500, "InternalError")], ids=["410-gone", "error-event"]
)
def test_a_watch_error_event_leads_to_a_relist(
    code: int, reason: str, cluster: RunningCluster, settings: Settings
) -> None:
    cluster.add(pod("kubeflow", "a"))
    gone = {"kind": "Status", "code": code, "reason": reason, "message": "too old resource version"}
    cluster.next_watches(
        (
            cluster.change_silently("kubeflow", "a", {"status": ready_status()}),
            event("ERROR", gone),
            ...,
        )
    )

    assert wait(settings).snapshot.ready == 1
    assert len(cluster.requests(is_pod_list)) == 2


# ---- inv status


def test_cluster_status_lists_what_is_not_ready_and_why(
    cluster: RunningCluster, settings: Settings
) -> None:
    cluster.add(pod("kubeflow", "api", phase="Running", ready=True))
    cluster.add(pod("kubeflow", "mysql", statuses=[waiting("main", "ContainerCreating")]))
    cluster.add(
        pod(
            "kubeflow",
            "big",
            conditions=unschedulable("0/1 nodes are available: 1 Insufficient memory."),
        )
    )

    table = cluster_status(settings_api(settings), settings.wait_namespaces).describe()

    assert table.splitlines()[0] == "1/3 pods ready (kubeflow 1/3)"
    assert row(table, "big")[:3] == ["kubeflow", "big", "Unschedulable"]
    assert "Insufficient memory" in row(table, "big")[4]
    assert row(table, "mysql")[:3] == ["kubeflow", "mysql", "ContainerCreating"]
    assert len(table.splitlines()) == 4  # counts, header, two rows: "api" is ready


# ---- the judging, pure: no API server


def _crash(restarts: int) -> PodState:
    return PodState(
        "kf",
        "api",
        False,
        "CrashLoopBackOff",
        f"{restarts} restarts; back-off",
        container="main",
        restarts=restarts,
    )


_DB_STARTING = PodState("kf", "db", False, "ContainerCreating")
_DB_READY = PodState("kf", "db", True, "Running")


def test_a_crash_loop_while_others_start_fails_exactly_at_the_grace() -> None:
    judge = CrashJudge(grace=90)

    assert not judge.judge([_crash(1), _DB_STARTING], 0.0)[0].fatal
    assert not judge.judge([_crash(2), _DB_STARTING], 89.9)[0].fatal
    [api, _] = judge.judge([_crash(3), _DB_STARTING], 90.0)
    assert api.fatal
    assert api.message == (
        "restarted 3 times over 1m30s (HK_WAIT_CRASH_GRACE=90); 3 restarts; back-off"
    )


def test_a_crash_loop_that_heals_starts_its_grace_again() -> None:
    judge = CrashJudge(grace=90)
    judge.judge([_crash(1), _DB_STARTING], 0.0)
    judge.judge([replace(_crash(1), ready=True, reason="Running"), _DB_STARTING], 50.0)

    assert not judge.judge([_crash(2), _DB_STARTING], 100.0)[0].fatal
    assert judge.judge([_crash(3), _DB_STARTING], 190.0)[0].fatal


def test_a_crash_loop_fails_when_it_restarts_again_after_every_other_pod_is_ready() -> None:
    judge = CrashJudge(grace=600)

    assert not judge.judge([_crash(3), _DB_READY], 0.0)[0].fatal
    assert not judge.judge([_crash(3), _DB_READY], 5.0)[0].fatal
    [api, _] = judge.judge([_crash(4), _DB_READY], 10.0)
    assert api.fatal
    assert api.message == (
        "restarted 4 times, and again after every other pod was ready (its dependencies "
        "are up); 4 restarts; back-off"
    )


def test_the_restart_count_to_beat_is_taken_again_when_a_dependency_goes_down() -> None:
    judge = CrashJudge(grace=600)
    judge.judge([_crash(3), _DB_READY], 0.0)
    judge.judge([_crash(4), _DB_STARTING], 5.0)  # the database restarts: not a verdict yet

    assert not judge.judge([_crash(5), _DB_READY], 10.0)[0].fatal
    assert judge.judge([_crash(6), _DB_READY], 15.0)[0].fatal


def test_a_pod_that_no_longer_counts_does_not_hold_a_crash_loop_back() -> None:
    judge = CrashJudge(grace=600)
    gone = replace(_DB_STARTING, counted=False)

    judge.judge([_crash(3), gone], 0.0)
    assert judge.judge([_crash(4), gone], 5.0)[0].fatal


def _failed_job_pod(name: str, job: str = "setup") -> PodState:
    return PodState("kf", name, False, "Failed", "Error", job=job)


@pytest.mark.parametrize(
    ("outcome", "counted", "fatal", "reason"),
    [
        ("succeeded", False, False, "Failed"),
        ("gone", False, False, "Failed"),
        ("running", True, False, "Failed"),
        ("failed", True, True, "JobFailed"),
    ],
)
def test_a_failed_job_pod_without_a_live_sibling_is_settled_by_its_job(
    outcome: str, counted: bool, fatal: bool, reason: str
) -> None:
    asked: list[tuple[str, str]] = []

    def lookup(namespace: str, job: str) -> tuple[str, str]:
        asked.append((namespace, job))
        return outcome, "BackoffLimitExceeded: Job has reached the specified backoff limit"

    tracker = PodTracker(lookup, CrashJudge(600))
    # a running pod of a Job of the same name in another namespace is no sibling
    elsewhere = PodState("team", "setup-2", False, "Running", job="setup")
    [settled, _] = tracker._settle_jobs([_failed_job_pod("setup-1"), elsewhere])

    assert asked == [("kf", "setup")]
    assert (settled.counted, settled.fatal, settled.reason) == (counted, fatal, reason)
    if fatal:
        assert settled.explain().endswith("see kubectl describe job -n kf setup.")


def test_poll_until_returns_the_first_result_and_fails_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each status is said once, when it changes; the last look is at the deadline."""
    caplog.set_level(logging.INFO, logger="hello_kubeflow.kube.wait")
    clock = VirtualClock()
    answers = iter([(None, "starting"), (None, "starting"), ("ready", "done")])

    assert (
        poll_until(
            "Notebook kf/nb",
            lambda: next(answers),
            timeout=10,
            poll_interval=2,
            too_late=lambda status: WaitTimeoutError(status),
            clock=clock,
        )
        == "ready"
    )
    assert clock.time == 4.0
    assert [r.getMessage() for r in caplog.records] == ["Notebook kf/nb: starting"]

    looks: list[float] = []

    def never() -> tuple[str | None, str]:
        looks.append(clock.time)
        return None, "still starting"

    with pytest.raises(WaitTimeoutError, match=r"^still starting$"):
        poll_until(
            "Notebook kf/nb",
            never,
            timeout=10,
            poll_interval=2,
            too_late=lambda status: WaitTimeoutError(status),
            clock=clock,
        )
    assert looks == [4.0, 6.0, 8.0, 10.0, 12.0, 14.0]


# ---- what the waits say, pure: no API server

_API_FIX = (
    "Check that the cluster is up and that your context may list pods "
    "(`kubectl auth can-i list pods -A`)."
)
_SLOW = "raise HK_WAIT_TIMEOUT (or --timeout) if the cluster is only slow."
_UNSCHEDULABLE = PodState("kf", "api", False, "Unschedulable", "0/1 nodes")


def _feed(scope: str, last_error: str = "") -> Any:
    return SimpleNamespace(
        scope=scope,
        where=f"namespace {scope}" if scope else "all namespaces",
        last_error=last_error,
    )


def test_a_timeout_names_what_is_not_ready_and_what_to_do() -> None:
    snapshot = Snapshot((_UNSCHEDULABLE,), ("kf",))

    assert str(_timed_out(snapshot, 30, [_feed("kf")], {"kf"})) == (
        "not every pod was ready after 30.0s:\n0/1 pods ready (kf 0/1)\n"
        "NAMESPACE  POD  STATUS         RESTARTS  WHY\n"
        "kf         api  Unschedulable  0         0/1 nodes\n"
        "Unschedulable pods need more nodes, CPU or memory (see the scheduler's message); "
        f"{_SLOW}"
    )
    assert str(_timed_out(Snapshot((), ("kf",)), 30, [_feed("kf")], {"kf"})) == (
        "not every pod was ready after 30.0s:\n0/0 pods ready (kf 0/0): nothing is waiting.\n"
        f"No pods appeared: check the namespaces and that the install was applied; {_SLOW}"
    )


def test_a_timeout_before_any_list_blames_the_api_server_per_feed() -> None:
    feeds = [_feed("kf"), _feed("", "503 Service Unavailable"), _feed("team")]

    assert str(_timed_out(Snapshot((), ("kf", "", "team")), 90, feeds, {"team"})) == (
        "the API server did not answer a pod list within 1m30s (namespace kf: no answer; "
        f"all namespaces: 503 Service Unavailable). {_API_FIX}"
    )


def test_a_refused_watch_names_the_scope_and_the_error() -> None:
    refused = _refused(FeedMessage("kf", "error", (), RuntimeError("boom")))
    unknown = _refused(FeedMessage("", "error"))

    assert str(refused) == f"cannot watch pods in namespace kf: RuntimeError: boom. {_API_FIX}"
    assert str(unknown) == (
        f"cannot watch pods in all namespaces: RuntimeError: unknown error. {_API_FIX}"
    )


class _Logs:
    """The one call `last_logs` makes, answering `data` or raising `error`."""

    def __init__(self, data: bytes = b"", error: Exception | None = None) -> None:
        self.data, self.error = data, error
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def read_namespaced_pod_log(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        if self.error is not None:
            raise self.error
        return SimpleNamespace(data=self.data)


_CRASHED = PodState("kf", "api", False, "CrashLoopBackOff", "", container="main", fatal=True)


def test_a_crash_loop_error_quotes_the_previous_runs_last_20_lines() -> None:
    core = _Logs("\n".join(f"line {i}" for i in range(25)).encode() + b"\n")

    quoted = last_logs(core, _CRASHED)  # type: ignore[arg-type]

    assert quoted == "\nLast log lines of container 'main' (previous run):\n" + "\n".join(
        f"    line {i}" for i in range(5, 25)
    )
    assert core.calls == [
        (
            ("api", "kf"),
            {"container": "main", "previous": True, "tail_lines": 20, "_preload_content": False},
        )
    ]


def test_missing_or_unreadable_logs_are_said_and_other_states_quote_none() -> None:
    assert last_logs(_Logs(b" \n"), _CRASHED) == "\n(its previous run left no log lines)"  # type: ignore[arg-type]
    assert (
        last_logs(_Logs(error=RuntimeError("gone")), _CRASHED)  # type: ignore[arg-type]
        == "\n(its logs could not be read: RuntimeError: gone)"
    )
    pulling = replace(_CRASHED, reason="ImagePullBackOff")
    assert last_logs(_Logs(b"x"), pulling) == ""  # type: ignore[arg-type]
    assert last_logs(_Logs(b"x"), replace(_CRASHED, container="")) == ""  # type: ignore[arg-type]


def test_the_result_as_json_rounds_the_seconds() -> None:
    result = WaitResult(Snapshot((_UNSCHEDULABLE,), ("kf",)), 1.23456)

    assert result.as_dict()["seconds"] == 1.235
    assert result.as_dict()["ready"] == 0 and result.as_dict()["total"] == 1


def _pod_at(namespace: str, name: str) -> dict[str, Any]:
    return pod(namespace, name, phase="Running", ready=True)


def test_the_tracker_folds_lists_changes_and_deletions_per_scope() -> None:
    tracker = PodTracker(lambda ns, job: ("running", ""), CrashJudge(600))
    tracker.apply(FeedMessage("kf", "sync", (_pod_at("kf", "a"), _pod_at("kf", "b"))))
    tracker.apply(FeedMessage("team", "sync", (_pod_at("team", "c"),)))
    tracker.apply(FeedMessage("kf", "put", (_pod_at("kf", "d"),)))
    tracker.apply(FeedMessage("kf", "delete", (_pod_at("kf", "a"),)))
    assert sorted(tracker.pods) == [("kf", "b"), ("kf", "d"), ("team", "c")]

    tracker.apply(FeedMessage("kf", "sync", (_pod_at("kf", "e"),)))  # kf re-listed: b, d gone
    assert sorted(tracker.pods) == [("kf", "e"), ("team", "c")]

    tracker.apply(FeedMessage("", "sync", (_pod_at("x", "f"),)))  # all namespaces re-listed
    assert sorted(tracker.pods) == [("x", "f")]


def test_cluster_status_of_some_namespaces_lists_only_those(
    cluster: RunningCluster, settings: Settings
) -> None:
    cluster.add(pod("kubeflow", "api", statuses=[waiting("main", "ContainerCreating")]))
    cluster.add(pod("other", "web", statuses=[waiting("main", "ContainerCreating")]))

    snapshot = cluster_status(settings_api(settings), ["kubeflow"])

    assert [s.key for s in snapshot.states] == [("kubeflow", "api")]
    assert snapshot.namespaces == ("kubeflow",)
    assert snapshot.describe().splitlines()[0] == "0/1 pods ready (kubeflow 0/1)"


@pytest.mark.parametrize(
    ("namespaces", "where"), [(["kubeflow"], "namespace kubeflow"), ([], "all namespaces")]
)
def test_cluster_status_refused_names_where_and_the_fix(
    cluster: RunningCluster, settings: Settings, namespaces: list[str], where: str
) -> None:
    cluster.fail(is_pod_list, 1, 403)

    with pytest.raises(ClusterError) as refused:
        cluster_status(settings_api(settings), namespaces)

    message = str(refused.value)
    assert message.startswith(f"cannot list pods in {where}: ")
    assert "403" in message
    assert message.endswith(f". {_API_FIX}")


def test_a_crash_loop_without_a_message_is_timed_from_when_it_was_first_seen() -> None:
    judge = CrashJudge(grace=90)
    quiet = replace(_crash(1), message="")
    judge.judge([quiet, _DB_STARTING], 10.0)

    [api, _] = judge.judge([replace(quiet, restarts=4), _DB_STARTING], 100.0)

    assert api.message == "restarted 4 times over 1m30s (HK_WAIT_CRASH_GRACE=90)"
    judge = CrashJudge(grace=600)
    judge.judge([quiet, _DB_READY], 0.0)
    [api, _] = judge.judge([replace(quiet, restarts=2), _DB_READY], 5.0)
    assert api.message == (
        "restarted 2 times, and again after every other pod was ready (its dependencies are up)"
    )


def test_a_failed_job_pod_whose_retry_is_still_starting_does_not_count() -> None:
    asked: list[str] = []

    def lookup(namespace: str, job: str) -> tuple[str, str]:
        asked.append(job)
        return "failed", "BackoffLimitExceeded"

    retry = PodState("kf", "setup-2", False, "ContainerCreating", job="setup")
    [failed, _] = PodTracker(lookup, CrashJudge(600))._settle_jobs(
        [_failed_job_pod("setup-1"), retry]
    )

    assert (failed.counted, failed.fatal, asked) == (False, False, [])


def test_poll_until_says_nothing_for_an_empty_status(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hello_kubeflow.kube.wait")
    answers = iter([(None, ""), ("done", "")])

    poll_until(
        "Notebook kf/nb",
        lambda: next(answers),
        timeout=10,
        poll_interval=1,
        too_late=WaitTimeoutError,
        clock=VirtualClock(),
    )
    assert caplog.records == []
