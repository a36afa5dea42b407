"""The one backoff every retry loop uses: exponential, capped, with jitter."""

from __future__ import annotations

from tenacity import wait_exponential_jitter
from tenacity.wait import wait_base


def jittered_backoff(first: float, maximum: float, jitter: float | None = None) -> wait_base:
    """Wait `first`, then twice as long each time up to `maximum`, plus random jitter.

    Args:
        first: the first wait, in seconds.
        maximum: the longest wait, in seconds.
        jitter: up to this many seconds are added at random (default: `first`), so
            clients that failed together do not retry together.
    """
    return wait_exponential_jitter(
        multiplier=first, max=maximum, jitter=first if jitter is None else jitter
    )
