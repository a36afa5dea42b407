"""The one retry policy: exponential backoff with jitter, and one readable line per retry."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tenacity (with tornado, 0.05 s) only when a retry is made: not in the steps
    from tenacity import RetryCallState
    from tenacity.stop import stop_base
    from tenacity.wait import wait_base

MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Backoff:
    """The one retry policy: waits from `initial` seconds, doubling up to `maximum`, plus up
    to `jitter` random seconds (default: `initial`); no more than `attempts` attempts, none
    started after `deadline` seconds (None: no such limit).
    """

    initial: float = 0.5
    maximum: float = 10.0
    jitter: float | None = None
    attempts: int | None = None
    deadline: float | None = None

    def wait(self, initial: float | None = None) -> wait_base:
        """tenacity's `wait`: jittered exponential backoff (from `initial` if given)."""
        return jittered_backoff(initial or self.initial, self.maximum, self.jitter)

    def stop(self) -> stop_base:
        """tenacity's `stop`: after `attempts` or past `deadline`, whichever comes first."""
        from tenacity import stop_after_attempt, stop_after_delay, stop_never  # see below

        stop: stop_base = stop_never
        if self.attempts is not None:
            stop = stop_after_attempt(self.attempts)
        if self.deadline is not None:
            by_time = stop_after_delay(self.deadline)
            stop = by_time if self.attempts is None else stop | by_time
        return stop


# How hard to retry one MNIST mirror on transient failures before trying the next.
DEFAULT_RETRY = Backoff(initial=0.5, maximum=8.0, jitter=0.5, attempts=4, deadline=60.0)


def jittered_backoff(first: float, maximum: float, jitter: float | None = None) -> wait_base:
    """Wait `first` seconds, then twice as long each time up to `maximum`, plus up to `jitter`
    random seconds (default: `first`) so that clients that failed together retry apart.
    """
    # tenacity (and the tornado it loads) only where a policy is built: not in a step's start
    from tenacity import wait_exponential_jitter

    return wait_exponential_jitter(
        multiplier=first, max=maximum, jitter=first if jitter is None else jitter
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from or while handling, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_name_not_resolved(exc: BaseException) -> bool:
    """True when the failure is a host name that does not resolve (DNS): waiting will not help."""
    return any(isinstance(cause, socket.gaierror) for cause in _causes(exc))


def describe_failure(exc: BaseException | None) -> str:
    """A short reason by the failure's type: an HTTP error's status (`HTTP 503`), a network
    error's own words (`Connection refused`, under requests' and urllib3's wrappers), else
    the first line."""
    if exc is None:
        return "failed"
    said = _http_status(exc) or _network_reason(exc)
    if said:
        return said
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:MAX_REASON_CHARS]


def _http_status(exc: BaseException) -> str:
    """`HTTP 503 Service Unavailable` for an error carrying a status, else ""."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int):
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if not isinstance(status, int) or status <= 0:
        return ""
    reason = str(getattr(exc, "reason", "") or "").strip()
    reason = reason if reason and "\n" not in reason and len(reason) < 60 else ""
    return f"HTTP {status} {reason}".strip()


def _network_reason(exc: BaseException) -> str:
    """The innermost network error's own words, else ""."""
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cause, TimeoutError):
            return "timed out"
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror).strip().rstrip(".")
        if isinstance(cause, ConnectionError) and str(cause):  # http.client's RemoteDisconnected
            return str(cause)
    return ""


def log_retry(
    logger: logging.Logger,
    what: str,
    *,
    level: int = logging.WARNING,
    describe: Callable[[BaseException | None], str] = describe_failure,
    outcome: str = " failed",
) -> Callable[[RetryCallState], None]:
    """A tenacity `before_sleep` logging one line to `logger` at `level`, naming `what` was
    attempted and the failure (`describe`): `GET http://x/f.gz failed (Connection refused),
    attempt 2; next try in 1.3 s`. A poll that is simply not done yet passes `outcome=""`.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.log(
            level,
            "%s%s (%s), attempt %d; next try in %.1f s",
            what,
            outcome,
            describe(exc),
            state.attempt_number,
            delay,
        )

    return before_sleep
