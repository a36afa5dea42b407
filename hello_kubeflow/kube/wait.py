"""Wait until every pod is ready, failing fast on what will not heal; or report once.

A crash loop fails the wait only when it persists (docs/cluster.md says why).
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hello_kubeflow.errors import ClusterError, HelloKubeflowError, PodFailedError, WaitTimeoutError
from hello_kubeflow.kube.client import (
    TimedApiClient,
    api_retrying,
    describe_api_error,
    is_transient,
)
from hello_kubeflow.kube.feed import (
    FEED_BACKOFF,
    WATCH_SECONDS,
    FeedMessage,
    PodFeed,
    list_pods,
    scope_name,
)
from hello_kubeflow.kube.pods import CRASH_REASON, Pod, PodState, pod_state
from hello_kubeflow.kube.report import Progress, Snapshot, format_seconds
from hello_kubeflow.retry import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")

PROGRESS_INTERVAL = 5.0  # seconds between progress messages while pods change
PROGRESS_HEARTBEAT = 30.0  # seconds between progress messages while nothing changes
LOG_LINES = 20  # lines of a crash-looping container's last log quoted in the error
NO_RESTART_LIMIT = 2**31  # `pod_state`'s restart limit: `CrashJudge` judges crash loops
JOB_RECHECK = 5.0  # seconds before the status of a Job is asked again

JobLookup = Callable[[str, str], tuple[str, str]]
"""(namespace, job) -> (outcome, message); outcome: succeeded, failed, running or gone."""


class Clock:
    """Where a wait reads time and pauses: tests pass a virtual one, so load never sways a test."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Pause between two looks."""
        time.sleep(seconds)

    def drain(self, out: queue.Queue[FeedMessage], pause: float) -> list[FeedMessage]:
        """Every feed message waiting, after blocking up to `pause` seconds for the first."""
        try:
            messages = [out.get(timeout=max(pause, 0.0))]
        except queue.Empty:
            return []
        while not out.empty():  # this thread alone takes from `out`
            messages.append(out.get_nowait())
        return messages


REAL_TIME = Clock()


@dataclass(frozen=True)
class WaitResult:
    """What `wait_for_pods` saw when everything was ready."""

    snapshot: Snapshot
    seconds: float

    def describe(self) -> str:
        """One line for a person."""
        return f"{self.snapshot.counts_text()} after {format_seconds(self.seconds)}"

    def as_dict(self) -> dict[str, Any]:
        """The pods' state when all were ready, and how long the wait took."""
        return {**self.snapshot.as_dict(), "seconds": round(self.seconds, 3)}


@dataclass
class CrashJudge:
    """Fails a crash loop past `grace` seconds, or restarting after all others were ready.

    Keyed by (namespace, pod, container): `since` it crash-loops, its restarts at `baseline`.
    """

    grace: float
    since: dict[tuple[str, str, str], float] = field(default_factory=dict)
    baseline: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def judge(self, states: list[PodState], now: float) -> list[PodState]:
        """The states, with persistent crash loops made fatal."""
        counted = [s for s in states if s.counted]
        keep = {(s.namespace, s.name, s.container) for s in counted if not s.ready}
        self.since = {k: v for k, v in self.since.items() if k in keep}
        self.baseline = {k: v for k, v in self.baseline.items() if k in keep}
        return [self._judge_one(s, counted, now) for s in states]

    def _judge_one(self, s: PodState, counted: list[PodState], now: float) -> PodState:
        if not (s.counted and not s.ready and s.reason == CRASH_REASON):
            return s
        key = (s.namespace, s.name, s.container)
        since = self.since.setdefault(key, now)
        others_ready = all(o.ready for o in counted if o.key != s.key)
        if not others_ready:
            self.baseline.pop(key, None)
        elif s.restarts > self.baseline.setdefault(key, s.restarts):
            s = replace(
                s,
                fatal=True,
                message=f"restarted {s.restarts} times, and again after every other pod "
                f"was ready (its dependencies are up); {s.message}".strip("; "),
            )
        if not s.fatal and now - since >= self.grace:
            s = replace(
                s,
                fatal=True,
                message=f"restarted {s.restarts} times over {format_seconds(now - since)} "
                f"(HK_WAIT_CRASH_GRACE={self.grace:g}); {s.message}".strip("; "),
            )
        return s


def poll_until(
    where: str,
    look: Callable[[], tuple[T | None, str]],
    *,
    timeout: float,
    poll_interval: float,
    too_late: Callable[[str], HelloKubeflowError],
    clock: Clock = REAL_TIME,
) -> T:
    """Call `look` every `poll_interval` seconds until it has a result; return the result.

    Args:
        where: what is waited for, e.g. `Notebook team/hello`: starts each progress line.
        look: (the result, or None while there is none yet; a short status); it raises
            at once on what will not heal.
        timeout: seconds until the wait fails.
        poll_interval: seconds between looks.
        too_late: the error for a wait that ran out, given the last status.
        clock: where the time is read and the pauses are taken.

    Raises:
        HelloKubeflowError: `too_late(status)` at the deadline, or what `look` raised.
    """
    deadline = clock.now() + timeout
    said = ""
    while True:
        result, status = look()
        if result is not None:
            return result
        if status != said:
            log.info("%s: %s", where, status)
            said = status
        if clock.now() >= deadline:
            raise too_late(status)
        clock.sleep(poll_interval)


def job_lookup(api: client.ApiClient) -> JobLookup:
    """A `JobLookup` that asks the API (`api_client`), at most once per Job every JOB_RECHECK s."""
    batch = client.BatchV1Api(api)
    cache: dict[tuple[str, str], tuple[float, tuple[str, str]]] = {}

    def lookup(namespace: str, name: str) -> tuple[str, str]:
        now = time.monotonic()
        cached = cache.get((namespace, name))
        if cached and now - cached[0] < JOB_RECHECK:
            return cached[1]
        cache[(namespace, name)] = (now, _job_outcome(batch, namespace, name))
        return cache[(namespace, name)][1]

    return lookup


def _job_outcome(batch: client.BatchV1Api, namespace: str, name: str) -> tuple[str, str]:
    try:
        response = batch.read_namespaced_job_status(name, namespace, _preload_content=False)
    except Exception as exc:
        if isinstance(exc, ApiException) and exc.status == 404:
            return ("gone", "")
        if not (isinstance(exc, ApiException) or is_transient(exc)):
            raise
        return ("running", f"job status unknown: {describe_api_error(exc)}")
    status = json.loads(response.data).get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in (
            "Complete",
            "SuccessCriteriaMet",
        ):
            return ("succeeded", "")
        if condition.get("status") == "True" and condition.get("type") == "Failed":
            return (
                "failed",
                f"job {name}: {condition.get('reason', '')} {condition.get('message', '')}".strip(),
            )
    if int(status.get("succeeded") or 0) > 0:
        return ("succeeded", "")
    return ("running", "")


@dataclass
class PodTracker:
    """The pods known so far, by (namespace, name); judged on demand."""

    job_lookup: JobLookup
    crashes: CrashJudge | None = None  # None: crash loops are not judged (one look)
    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)

    def apply(self, message: FeedMessage) -> None:
        """Fold one feed message into what is known."""
        if message.kind == "sync":  # the whole scope, as listed: drop what is gone
            self.pods = {k: p for k, p in self.pods.items() if message.scope not in ("", k[0])}
        for pod in message.pods:
            meta = pod.get("metadata") or {}
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            if message.kind == "delete":
                self.pods.pop(key, None)
            else:
                self.pods[key] = pod

    def snapshot(self, namespaces: Sequence[str], now: float | None = None) -> Snapshot:
        """Judge every pod; a Failed Job pod is settled by its siblings or its Job."""
        states = [pod_state(pod, NO_RESTART_LIMIT) for pod in self.pods.values()]
        states = self._settle_jobs(states)
        if self.crashes is not None and now is not None:
            states = self.crashes.judge(states, now)
        return Snapshot(tuple(states), tuple(namespaces))

    def _settle_jobs(self, states: list[PodState]) -> list[PodState]:
        settled = []
        for s in states:
            if s.job and s.reason == "Failed":
                siblings = [o for o in states if o.job == s.job and o.namespace == s.namespace]
                if any(o.ready or o.reason != "Failed" for o in siblings):
                    s = replace(s, counted=False)  # the Job succeeded, or retries in a new pod
                else:
                    outcome, message = self.job_lookup(s.namespace, s.job)
                    if outcome in ("succeeded", "gone"):
                        s = replace(s, counted=False)
                    elif outcome == "failed":
                        s = replace(s, reason="JobFailed", message=message, fatal=True)
            settled.append(s)
        return settled


def wait_for_pods(
    api: client.ApiClient,
    namespaces: Sequence[str],
    timeout: float,
    grace: float,
    *,
    require_pods: bool = False,
    settle: float = 0.0,
    backoff: Backoff = FEED_BACKOFF,
    progress_interval: float = PROGRESS_INTERVAL,
    watch_seconds: int = WATCH_SECONDS,
    clock: Clock = REAL_TIME,
) -> WaitResult:
    """Wait until every pod in `namespaces` is ready (Running and Ready, or Succeeded).

    Lists then watches the pods (one feed per namespace, or one for all), so a
    change is seen at once, new pods included; progress is logged at INFO.

    Args:
        api: an API client that times its calls out (`api_client`).
        namespaces: namespaces to wait for; empty: all namespaces.
        timeout: seconds before giving up (`HK_WAIT_TIMEOUT`).
        grace: seconds a container may crash-loop while others start (`HK_WAIT_CRASH_GRACE`).
        require_pods: also require a pod in each namespace (an install's are still coming).
        settle: seconds everything must stay ready, with no new pod, to count.
        backoff: waits between re-lists after a broken list or watch.
        progress_interval: seconds between progress messages while pods change.
        watch_seconds: server-side length of one watch request.
        clock: where the deadline, the crash grace and the settle time are read, and
            the feeds are waited on (the feeds' own retries keep real time).

    Raises:
        PodFailedError: a pod will not heal (names the pod, container and reason).
        WaitTimeoutError: the timeout passed (a table of what is not ready and why).
        ClusterError: the API refused the list or watch (e.g. 403 Forbidden).
    """
    scopes = tuple(namespaces)
    started = clock.now()
    deadline = started + timeout
    out: queue.Queue[FeedMessage] = queue.Queue()
    core = client.CoreV1Api(api)
    feeds = [
        PodFeed(core, scope, out, time.monotonic() + timeout, backoff, watch_seconds)
        for scope in (scopes or ("",))
    ]
    tracker = PodTracker(job_lookup(api), CrashJudge(grace))
    progress = Progress(log, progress_interval, PROGRESS_HEARTBEAT)
    synced: set[str] = set()
    snapshot = Snapshot((), scopes)
    ready_since: float | None = None
    where = ", ".join(scopes) or "all namespaces"
    log.info("waiting up to %s for pods in %s", format_seconds(timeout), where)
    try:
        for feed in feeds:
            feed.start()
        while True:
            now = clock.now()
            if now >= deadline:
                raise _timed_out(snapshot, timeout, feeds, synced)
            pause = min(deadline - now, progress_interval, settle or progress_interval)
            _take(clock.drain(out, pause), tracker, synced)
            if len(synced) < len(feeds):
                continue
            snapshot = tracker.snapshot(scopes, clock.now())
            broken = snapshot.fatal()
            if broken is not None:
                raise PodFailedError(broken.explain() + last_logs(core, broken))
            now = clock.now()
            progress.update(snapshot, now - started, now)
            if not snapshot.complete(require_pods):
                ready_since = None
                continue
            ready_since = now if ready_since is None else ready_since
            if now - ready_since >= settle:
                result = WaitResult(snapshot, now - started)
                log.info("%s", result.describe())
                return result
    finally:
        for feed in feeds:
            feed.stop()


def _take(messages: list[FeedMessage], tracker: PodTracker, synced: set[str]) -> None:
    """Fold the feeds' messages into `tracker`, noting each scope heard from."""
    for message in messages:
        if message.kind == "error":
            raise _refused(message)
        tracker.apply(message)
        synced.add(message.scope)


def cluster_status(api: TimedApiClient, namespaces: Sequence[str]) -> Snapshot:
    """List the pods once and judge them: what `inv status` shows.

    Args:
        api: an API client that times its calls out (`api_client`); a list is
            retried for twice its read timeout.
        namespaces: namespaces to look at; empty: all namespaces.

    Raises:
        ClusterError: the API could not be reached or refused the list.
    """
    core = client.CoreV1Api(api)
    tracker = PodTracker(job_lookup(api))
    for scope in namespaces or ("",):
        pods = _list_once(core, scope, api.request_timeout[1] * 2)
        tracker.apply(FeedMessage(scope, "sync", tuple(pods)))
    return tracker.snapshot(namespaces)


def _list_once(core: client.CoreV1Api, scope: str, patience: float) -> list[Pod]:
    where = scope_name(scope)
    try:
        response = api_retrying(patience, f"listing pods in {where}")(list_pods, core, scope)
    except Exception as exc:
        if isinstance(exc, ApiException) or is_transient(exc):
            raise ClusterError(
                f"cannot list pods in {where}: {describe_api_error(exc)}. {_API_FIX}"
            ) from None
        raise
    return list(json.loads(response.data).get("items") or [])


def last_logs(core: client.CoreV1Api, state: PodState) -> str:
    """A crash-looping container's last log lines (its previous run), for an error ("": none)."""
    if state.reason != CRASH_REASON or not state.container:
        return ""
    try:
        response = core.read_namespaced_pod_log(
            state.name,
            state.namespace,
            container=state.container,
            previous=True,
            tail_lines=LOG_LINES,
            _preload_content=False,
        )
        text = response.data.decode(errors="replace").rstrip()
    except Exception as exc:  # the error stands without its logs
        return f"\n(its logs could not be read: {describe_api_error(exc)})"
    if not text:
        return "\n(its previous run left no log lines)"
    lines = "\n".join(f"    {line}" for line in text.splitlines()[-LOG_LINES:])
    return f"\nLast log lines of container '{state.container}' (previous run):\n{lines}"


_API_FIX = (
    "Check that the cluster is up and that your context may list pods "
    "(`kubectl auth can-i list pods -A`)."
)


def _refused(message: FeedMessage) -> ClusterError:
    error = describe_api_error(message.error or RuntimeError("unknown error"))
    return ClusterError(f"cannot watch pods in {scope_name(message.scope)}: {error}. {_API_FIX}")


def _timed_out(
    snapshot: Snapshot, timeout: float, feeds: list[PodFeed], synced: set[str]
) -> WaitTimeoutError:
    silent = [f for f in feeds if f.scope not in synced]
    if silent:
        errors = "; ".join(f"{scope_name(f.scope)}: {f.last_error or 'no answer'}" for f in silent)
        return WaitTimeoutError(
            f"the API server did not answer a pod list within {format_seconds(timeout)} "
            f"({errors}). {_API_FIX}"
        )
    hints = []
    if any(s.reason == "Unschedulable" for s in snapshot.not_ready()):
        hints.append(
            "Unschedulable pods need more nodes, CPU or memory (see the scheduler's message)"
        )
    if snapshot.total == 0:
        hints.append("no pods appeared: check the namespaces and that the install was applied")
    hints.append("raise HK_WAIT_TIMEOUT (or --timeout) if the cluster is only slow")
    advice = "; ".join(hints)
    return WaitTimeoutError(
        f"not every pod was ready after {format_seconds(timeout)}:\n{snapshot.describe()}\n"
        f"{advice[0].upper()}{advice[1:]}."
    )
