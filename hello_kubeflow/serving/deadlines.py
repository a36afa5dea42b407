"""The one module touching uvicorn's internals (tests/test_serving_uvicorn.py guards each name).

Its protocol adds an arrival deadline, a head limit, JSON refusals, a lingering close, a drain.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import socket
import struct
import sys
import termios
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hello_kubeflow.serving.responses import seldon_error, v2_error

MAX_HEAD_BYTES = 64 * 1024
"""Request line and headers together; Envoy (Istio's gateway) refuses above 60 KiB."""
LINGER_BYTES = 64 * 1024 * 1024
"""How much of a refused request is read and dropped before the connection is closed."""


class _Refused(Exception):
    """Stops the parser: the request has been answered by the protocol itself."""


def _answer(status: int, message: str, path: bytes = b"") -> bytes:
    """A raw HTTP answer closing the connection, in the route's protocol's error form."""
    body = v2_error(message) if path.startswith(b"/v2") else seldon_error(message, status)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def deadline_protocol(seconds: float, drain_seconds: float = 5.0) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline, a head limit, JSON refusals and a drain.

    Args:
        seconds: from a request's first byte (or the connection) to the end of its body.
        drain_seconds: once stopping, how long a request still arriving has before a 503.
    """
    timeout = _answer(
        408,
        f"the request did not arrive within {seconds:g} s (HK_REQUEST_TIMEOUT): "
        "send the whole request at once",
    )

    class DeadlineProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _arriving = False  # a request has begun and its body has not ended
        _in_head = True  # the next bytes belong to a request line or headers
        _head_bytes = 0  # received of the open head, at least
        _head_bound = 0  # and at most, before the current chunk
        _chunk_bytes = 0
        _completed = 0  # requests fully arrived on this connection
        _lingering: int | None = None  # bytes still to drop before closing
        _draining = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._closer = _CloseByLingering(transport, self)
            self._arm()  # a client that connects and sends nothing is bounded too

        def data_received(self, data: bytes) -> None:
            if self._lingering is not None:
                self._unset_keepalive_if_required()
                self._lingering -= len(data)
                if self._lingering < 0:
                    self.transport.close()
                return
            in_head, completed = self._in_head, self._completed
            self._chunk_bytes = len(data)
            super().data_received(data)
            if not self._in_head:
                return
            if in_head and completed == self._completed:  # the whole chunk is head bytes
                self._head_bytes += len(data)
                self._head_bound += len(data)
                if self._head_bytes > MAX_HEAD_BYTES and self._lingering is None:
                    self._refuse_head()
            else:  # a head began after a request ended in this chunk: at most all of it
                self._head_bound = len(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arriving = True
            if self._deadline is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._in_head = False
            # Counted exactly only when the chunks so far could hold an oversized head.
            if self._head_bound + self._chunk_bytes > MAX_HEAD_BYTES and (
                len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
                > MAX_HEAD_BYTES
            ):
                self._refuse_head()
                raise _Refused  # uvicorn's send_400_response then sees it answered
            super().on_headers_complete()
            if self.cycle is not None:
                self.cycle.transport = self._closer  # type: ignore[assignment]
                if self._draining:
                    self.cycle.keep_alive = False

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._arriving = False
            self._in_head = True
            self._head_bytes = self._head_bound = 0
            self._completed += 1
            self._disarm()  # arrived: the model's time is not the client's

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            # Called by uvicorn inside its `except httptools.HttpParserError`.
            if self._lingering is not None:
                return  # the parse was stopped by a refusal already sent
            error = sys.exception()
            detail = str(error) if error is not None and str(error) else msg
            self._refuse(
                400,
                f"not a valid HTTP/1.1 request ({detail}): send a known method, lines "
                "ending in CRLF, and either Content-Length or chunked Transfer-Encoding",
            )

        def shutdown(self) -> None:
            """The server is stopping: finish what has arrived, then close."""
            self._draining = True
            if self._lingering is not None or self.transport.is_closing():
                return
            cycle = self.cycle
            idle = not self._arriving and (cycle is None or cycle.response_complete)
            if idle and not self._bytes_waiting():
                self.transport.close()
                return
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False
            self.loop.call_later(drain_seconds, self._end_drain)

        def _bytes_waiting(self) -> bool:
            """True when the client's next request has reached the socket, unread."""
            sock = self.transport.get_extra_info("socket")
            if sock is None:
                return False
            try:
                count = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
            except OSError:
                return False
            return bool(struct.unpack("i", count)[0])

        def _end_drain(self) -> None:
            """The drain is over: refuse a request still arriving, close an idle connection."""
            if self._lingering is not None or self.transport.is_closing():
                return
            if not self._arriving:
                if self.cycle is None or self.cycle.response_complete:
                    self.transport.close()
                return
            self._refuse(
                503,
                f"the server is stopping and the request had not arrived within "
                f"{drain_seconds:g} s: send it again",
            )

        def _refuse_head(self) -> None:
            self._refuse(
                431,
                f"the request line and headers are over this server's limit of "
                f"{MAX_HEAD_BYTES:,} bytes: send shorter headers (large cookies or "
                "tokens are the usual cause)",
            )

        def _refuse(self, status: int, message: str) -> None:
            """Answer a request the app cannot, then linger and close."""
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                if cycle.response_started:
                    self.transport.close()  # the app's answer is half sent: nothing to add
                    return
                # The app waits for the body: it sees a disconnect; what it sends is dropped.
                cycle.disconnected = True
                cycle.message_event.set()
            self.transport.write(_answer(status, message, getattr(self, "url", b"")))
            self.linger()

        def linger(self) -> None:
            """Close the sending side, drop up to LINGER_BYTES, then close (or at the deadline)."""
            if self._lingering is not None or self.transport.is_closing():
                return
            self._lingering = LINGER_BYTES
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.flow.resume_reading()
            if self._deadline is None:
                self._arm()

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
            if self._lingering is not None:
                self.transport.close()
                return
            cycle = self.cycle
            if cycle is None or cycle.response_complete or not cycle.response_started:
                if cycle is not None and not cycle.response_complete:
                    cycle.disconnected = True
                    cycle.message_event.set()
                self.transport.write(timeout)
            self.transport.close()

    return DeadlineProtocol


class _CloseByLingering:
    """The transport as a request's cycle sees it: closing mid-body (the app's 413) lingers."""

    def __init__(self, transport: Any, protocol: Any) -> None:
        self._transport = transport
        self._protocol = protocol

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def close(self) -> None:
        if self._protocol._arriving:
            self._protocol.linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DrainingServer(uvicorn.Server):
    """uvicorn's Server, serving the connections queued in the socket as it stops (no reset)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        protocol = functools.partial(
            self.config.http_protocol_class,  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        for listener in sockets or []:
            listener.setblocking(False)
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:  # BlockingIOError: none left
                    break
                await loop.connect_accepted_socket(protocol, connection)
        await super().shutdown(sockets)
