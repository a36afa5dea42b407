"""Follow the pods of one namespace (or all) by list then watch, in a background thread.

A watch the server ends at its timeout resumes from the last resourceVersion; one
that breaks (early end, reset, timeout, 410 Gone, ERROR event, 5xx, 429) is
followed, after a jittered backoff, by a new list: the list brings the whole state.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_delay, stop_when_event_set

from hello_kubeflow.kube.client import CONNECT_TIMEOUT, describe_api_error, is_transient
from hello_kubeflow.kube.pods import Pod
from hello_kubeflow.retry import Backoff, log_retry

log = logging.getLogger(__name__)

WATCH_SECONDS = 60  # how long the server keeps one watch open before ending it cleanly
WATCH_READ_MARGIN = 10.0  # extra seconds to wait on a silent watch before calling it broken
FEED_BACKOFF = Backoff(initial=0.5, maximum=5.0)  # before listing again after a break


@dataclass(frozen=True)
class FeedMessage:
    """What a feed tells the waiting thread: `sync`, `put`, `delete` (pods) or `error`.

    `sync` brings every pod of `scope`, replacing what was known; `error`, one retrying will
    not fix.
    """

    scope: str
    kind: Literal["sync", "put", "delete", "error"]
    pods: tuple[Pod, ...] = ()
    error: BaseException | None = None


class WatchDropped(Exception):
    """The server ended a watch long before its timeout: treated as broken (re-list)."""


def is_watch_transient(exc: BaseException) -> bool:
    """Transient for a list/watch: `is_transient`, 410 Gone, or a dropped watch."""
    if isinstance(exc, WatchDropped):
        return True
    return is_transient(exc) or (isinstance(exc, ApiException) and exc.status == 410)


@dataclass
class PodFeed:
    """List then watch the pods of `scope` ("" for all namespaces) into `out`.

    Gives up at `deadline` (`time.monotonic()`); `backoff` spaces the re-lists;
    `watch_seconds` is the server-side length of one watch request.
    """

    core: client.CoreV1Api
    scope: str
    out: queue.Queue[FeedMessage]
    deadline: float
    backoff: Backoff = field(default_factory=Backoff)
    watch_seconds: int = WATCH_SECONDS
    last_error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _response: Any = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start following in a daemon thread."""
        self._thread = threading.Thread(
            target=self._run, name=f"pods-{self.scope or 'all'}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop following; interrupts a watch that is blocked reading."""
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()  # urllib3 >= 2.3: unblocks a read in another thread
            except Exception:  # best effort: the read timeout ends it anyway
                log.debug(
                    "could not interrupt the watch of %s", scope_name(self.scope), exc_info=True
                )
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        retrying = Retrying(
            retry=retry_if_exception(is_watch_transient),
            wait=self.backoff.wait(),
            stop=stop_after_delay(max(0.0, self.deadline - time.monotonic()))
            | stop_when_event_set(self._stop),
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._before_sleep,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._follow()
        except Exception as exc:  # handed over to the waiting thread
            if not self._stop.is_set():
                self.out.put(FeedMessage(self.scope, "error", error=exc))

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop request cuts the backoff short

    def _before_sleep(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        # Not str(exc): an ApiException's spans headers and body, a bare reset is "".
        self.last_error = describe_api_error(exc) if exc else ""
        log_retry(
            log,
            f"listing and watching pods in {scope_name(self.scope)}",
            level=logging.INFO,
            describe=describe_api_error,
        )(state)

    def _follow(self) -> None:
        version = self._list()
        while not self._stop.is_set():
            version = self._watch(version)

    def _list(self) -> str:
        body = json.loads(list_pods(self.core, self.scope).data)
        pods = tuple(body.get("items") or [])
        self.out.put(FeedMessage(self.scope, "sync", pods))
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, version: str) -> str:
        """Watch from `version` until the server ends the watch; return the last version."""
        started = time.monotonic()
        response = list_pods(
            self.core,
            self.scope,
            watch=True,
            resource_version=version or None,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _request_timeout=(CONNECT_TIMEOUT, self.watch_seconds + WATCH_READ_MARGIN),
        )
        self._response = response  # set before checking stop: see stop()
        try:
            if self._stop.is_set():
                return version
            for line in response:  # urllib3's own line reader: one watch event a line
                if self._stop.is_set():
                    break
                if line.strip():
                    version = self._handle(json.loads(line)) or version
        except (urllib3.exceptions.HTTPError, OSError):
            if self._stop.is_set():
                return version  # our own stop() cut the stream
            raise
        finally:
            self._response = None
            response.close()  # not back to the pool: a half-read stream is no use
            response.release_conn()
        if not self._stop.is_set() and time.monotonic() - started < self.watch_seconds / 2:
            # Ended early without an error (a proxy, a restarting server): list again,
            # after a backoff, rather than resume in a tight loop.
            raise WatchDropped(f"the watch of pods in {scope_name(self.scope)} was dropped")
        return version

    def _handle(self, event: dict[str, Any]) -> str:
        """Pass one watch event on; return its resourceVersion ("" if none)."""
        kind, pod = event.get("type"), event.get("object") or {}
        if kind == "ERROR":  # e.g. 410 Gone: the version we watch from is too old
            raise ApiException(
                status=int(pod.get("code") or 500),
                reason=f"{pod.get('reason', '')}: {pod.get('message', '')}",
            )
        if kind in ("ADDED", "MODIFIED"):
            self.out.put(FeedMessage(self.scope, "put", (pod,)))
        elif kind == "DELETED":
            self.out.put(FeedMessage(self.scope, "delete", (pod,)))
        return str((pod.get("metadata") or {}).get("resourceVersion") or "")


def scope_name(scope: str) -> str:
    """`namespace kubeflow`, or `all namespaces` for "", for messages."""
    return f"namespace {scope}" if scope else "all namespaces"


def list_pods(core: client.CoreV1Api, scope: str, **kwargs: Any) -> Any:
    """List (or, with `watch=True`, watch) the pods of `scope`; the raw urllib3 response."""
    if scope:
        return core.list_namespaced_pod(scope, _preload_content=False, **kwargs)
    return core.list_pod_for_all_namespaces(_preload_content=False, **kwargs)
