"""A deadline for each request to arrive, so slow or stalled clients cannot hold connections.

uvicorn bounds only the idle time between keep-alive requests: a client that
sends one byte a second (slowloris), or connects and sends nothing, keeps its
connection forever. `deadline_protocol` makes uvicorn's own httptools protocol
give every request `seconds` from its first byte (the first from connecting)
until its whole body has arrived. A client still sending then gets a 408 in the
Seldon error form, with `Connection: close`, and is disconnected; the request
in the app, if any, sees the disconnect.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TIMEOUT_STATUS = 408


def timeout_response(seconds: float) -> bytes:
    """The raw HTTP 408 answer sent to a client too slow to send its request."""
    body = orjson.dumps(
        {
            "status": {
                "code": TIMEOUT_STATUS,
                "info": (
                    f"the request did not arrive within {seconds:g} s (HK_REQUEST_TIMEOUT): "
                    "send the whole request at once"
                ),
                "reason": "MICROSERVICE_BAD_DATA",
                "status": "FAILURE",
            }
        }
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def deadline_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline of `seconds` for each request to arrive.

    Args:
        seconds: how long a request may take, from its first byte (or from the
            connection, for the first request) to the end of its body.

    Returns:
        A protocol class for `uvicorn.Config(http=...)`.
    """
    answer = timeout_response(seconds)

    class DeadlineProtocol(HttpToolsProtocol):
        """HttpToolsProtocol whose requests must arrive within the deadline."""

        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()  # a client that connects and sends nothing is bounded too

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:
                self._arm()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()  # arrived: the model's time is not the client's

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is None or cycle.response_complete or not cycle.response_started:
                if cycle is not None and not cycle.response_complete:
                    # The app is waiting for the rest of the body: it will see a
                    # disconnect, and whatever it sends then is dropped.
                    cycle.disconnected = True
                    cycle.message_event.set()
                self.transport.write(answer)
            self.transport.close()

    return DeadlineProtocol
