"""Read request bodies (size limit, gzip, charsets); parse large ones in a helper process."""

from __future__ import annotations

import asyncio
import codecs
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from starlette.datastructures import Headers
from starlette.requests import Request

from hello_kubeflow.serving.features import BadInput
from hello_kubeflow.serving.feedback import Feedback, parse_feedback
from hello_kubeflow.serving.protocol import (
    SeldonRequest,
    V2Request,
    decode_json,
    may_hold_booleans,
    parse_seldon,
    parse_v2,
    seldon_text,
)

log = logging.getLogger(__name__)

INLINE_BODY_BYTES = 64 * 1024
"""Bodies up to this size (~20 images) are parsed on the event loop; larger ones elsewhere."""
HELPER_NICENESS = 5
"""The helper's lower CPU priority: one-image requests on the loop go before large batches."""
_GZIP = ("gzip", "x-gzip")  # x-gzip: the same coding's old name (RFC 9110, 8.4.1.3)
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # the gzip wrapper, not zlib's or raw deflate
# Byte order marks, UTF-32's first: its little-endian mark begins with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_UTF8 = frozenset({"utf-8", "utf8"})

_T = TypeVar("_T")
_helpers: list[ProcessPoolExecutor] = []  # this process's helper, once started
_helpers_lock = threading.Lock()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body as UTF-8 text bytes: inflated, re-encoded, held to `limit`.

    A Content-Length over it is refused unread (before uvicorn's "100 Continue").

    Raises:
        BadInput: 413 over the limit; 415 for an unread coding or charset; 400 for broken
            gzip, a Content-Length not a number, text not in its charset, a client gone.
    """
    headers = request.headers
    inflate = _wants_gzip(headers)
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadInput(f"Content-Length {declared[:40]!r} is not a number")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    inflater = zlib.decompressobj(_GZIP_WBITS) if inflate else None
    chunks: list[bytes] = []
    size = received = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] != "http.request":
            raise BadInput("the client disconnected before sending the whole body")
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        received += len(chunk)
        if inflater is not None:
            inflater, chunk = _inflate(inflater, chunk, limit - size)
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, counted=True, inflated=inflate)
        chunks.append(chunk)
    if inflater is not None and received and not inflater.eof:  # (no body: nothing to inflate)
        raise BadInput("the gzip body ends early: send the whole compressed stream")
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return _as_utf8(body, headers.get("content-type", ""))


def seldon_request(body: bytes, content_type: str, query_json: str | None) -> SeldonRequest:
    """A Seldon prediction request from its body; BadInput as `seldon_text`, `parse_seldon`."""
    text = seldon_text(body, content_type, query_json)
    return parse_seldon(decode_json(text), booleans_possible=may_hold_booleans(text))


def feedback_request(body: bytes, content_type: str, query_json: str | None) -> Feedback:
    """A Seldon feedback message from its body; BadInput as `seldon_text`, `parse_feedback`."""
    return parse_feedback(decode_json(seldon_text(body, content_type, query_json)))


def v2_request(body: bytes) -> V2Request:
    """An Open Inference Protocol request from its body; BadInput as `decode_json`, `parse_v2`."""
    return parse_v2(decode_json(body), booleans_possible=may_hold_booleans(body))


async def parse_elsewhere(parse: Callable[..., _T], *args: object, retry: bool = True) -> _T:
    """`parse(*args)` (a module-level function) in the helper process; a dead one replaced.

    With `retry`, a helper that died (killed, out of memory) is replaced and tried once.

    Raises:
        BadInput: as `parse` raises it (with its status).
        BrokenProcessPool: the helper died, and the new one too.
    """
    pool = _helper()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, parse, *args)
    except BrokenProcessPool:
        with _helpers_lock:
            if pool in _helpers:
                _helpers.remove(pool)
        pool.shutdown(wait=False)
        if not retry:
            raise
    log.warning("the helper process parsing large bodies died; trying again in a new one")
    return await parse_elsewhere(parse, *args, retry=False)


def _helper() -> ProcessPoolExecutor:
    """This process's helper (one worker, spawned: uvicorn's threads make forking unsafe)."""
    with _helpers_lock:
        if not _helpers:
            _helpers.append(
                ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_serve_the_server,
                )
            )
        return _helpers[0]


def stop_helper() -> None:
    """Stop this process's helper, if it has one (a server worker does, before it ends)."""
    with _helpers_lock:
        pools = list(_helpers)
        _helpers.clear()
    for pool in pools:
        pool.shutdown()


def _serve_the_server() -> None:
    """Ignore the group's Ctrl-C and SIGTERM (the server stops us); exit when the server dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(HELPER_NICENESS)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_after, args=(parent.sentinel,), daemon=True).start()


def _exit_after(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def _wants_gzip(headers: Headers) -> bool:
    """True for `Content-Encoding: gzip`, False for none (or identity); else a 415 BadInput."""
    codings = [
        c.strip().lower()
        for value in headers.getlist("content-encoding")
        for c in value.split(",")
        if c.strip() and c.strip().lower() != "identity"
    ]
    if not codings or (len(codings) == 1 and codings[0] in _GZIP):
        return bool(codings)
    raise BadInput(
        f"Content-Encoding {', '.join(codings)!r} is not supported: send the body as it "
        "is, or gzip-compressed with Content-Encoding: gzip",
        status=415,
    )


def _inflate(inflater: zlib._Decompress, chunk: bytes, room: int) -> tuple[zlib._Decompress, bytes]:
    """Inflate at most `room` + 1 bytes of `chunk`; the inflater for what follows, and them.
    Concatenated gzip members are one body (RFC 1952, 2.2), as `gzip.decompress` reads them."""
    out: list[bytes] = []
    try:
        while chunk:
            piece = inflater.decompress(chunk, max(room, 0) + 1)
            out.append(piece)
            room -= len(piece)
            if room < 0:
                break  # over the limit: the caller refuses it, nothing more is inflated
            chunk = inflater.unused_data if inflater.eof else b""
            if chunk:
                inflater = zlib.decompressobj(_GZIP_WBITS)
    except zlib.error as exc:
        raise BadInput(
            f"the body is not valid gzip ({exc}), though Content-Encoding says gzip: "
            "send it compressed with gzip, or without Content-Encoding"
        ) from None
    return inflater, out[0] if len(out) == 1 else b"".join(out)


def _as_utf8(body: bytes, content_type: str) -> bytes:
    """`body` as UTF-8: the Content-Type's charset, else a BOM or zero bytes (as `json.loads`)."""
    charset = _charset(content_type)
    if charset is None or charset in _UTF8:
        encoding = _detected(body)
        if encoding is None:
            return body
        if encoding == "utf-8-sig":
            return body[len(codecs.BOM_UTF8) :]
    else:
        encoding = charset
    try:
        text = body.decode(encoding)
    except LookupError:
        raise BadInput(
            f"charset {charset!r} is not one this server reads: send UTF-8 (or UTF-16)",
            status=415,
        ) from None
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"the body is not valid {encoding} text (at byte {exc.start}): send UTF-8, or "
            "name the body's encoding in the Content-Type's charset"
        ) from None
    return text.removeprefix("\ufeff").encode("utf-8")


def _charset(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type, lower-cased and unquoted, if any."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() or None
    return None


def _detected(body: bytes) -> str | None:
    """The encoding a byte order mark or zero bytes show; None for plain UTF-8."""
    head = body[:4]
    if len(head) < 2 or (head[0] not in b"\x00\xef\xfe\xff" and head[1] != 0):
        return None  # the usual case: JSON text in UTF-8 or ASCII
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return _by_zero_bytes(head)


def _by_zero_bytes(head: bytes) -> str | None:
    """No mark: the UTF-16 or UTF-32 byte order the zero bytes of JSON's first characters show."""
    if len(head) >= 4 and not head[0] and not head[1] and not head[2]:
        return "utf-32-be"
    if len(head) >= 4 and not head[1] and not head[2] and not head[3]:
        return "utf-32-le"
    if not head[0]:
        return "utf-16-be"
    if not head[1]:
        return "utf-16-le"
    return None


def _too_large(size: int, limit: int, *, counted: bool = False, inflated: bool = False) -> BadInput:
    amount = f"more than {limit:,}" if counted else f"{size:,}"
    what = "inflated request body" if inflated else "request body"
    return BadInput(
        f"the {what} is {amount} bytes, over this server's limit of {limit:,} "
        "(HK_MAX_BODY_BYTES): send fewer images per request",
        status=413,
    )
