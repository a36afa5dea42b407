"""A notebook-contract base image for the tests, and talking to its Jupyter server.

`build_notebook_base` makes the stand-in for Kubeflow's notebook images
(`tests/notebook_base/`, FROM the local Debian/Python base); `wait_for_jupyter`
waits for a server's `/api/status`; `run_in_kernel` starts a kernel through
Jupyter's REST API and runs code in it over the kernel's websocket (the
Jupyter messaging protocol, v5), as a notebook in the browser does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

NOTEBOOK_BASE = Path(__file__).resolve().parent / "notebook_base"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_TIMEOUT = 900
# Without a token (Kubeflow's gateway authenticates), Jupyter still wants the
# browser's XSRF pair on POST/DELETE: a cookie and a header of the same value.
XSRF = {"Cookie": "_xsrf=hello-kubeflow-tests", "X-XSRFToken": "hello-kubeflow-tests"}


def build_notebook_base(client: Any, base_image: str, tag: str) -> str:
    """Build the notebook-contract base FROM `base_image` as `tag`; return `tag`."""
    with tempfile.TemporaryDirectory(prefix="hk-nb-base-") as scratch:
        context = Path(scratch)
        for name in ("Dockerfile", "init"):
            shutil.copy2(NOTEBOOK_BASE / name, context / name)
        bundle = CA_BUNDLE.read_bytes() if CA_BUNDLE.is_file() else b""
        (context / "ca-bundle.pem").write_bytes(bundle)
        client.images.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE_IMAGE": base_image},
            rm=True,
            forcerm=True,
            timeout=BUILD_TIMEOUT,
        )
    return tag


def get_json(url: str, timeout: float = 10.0) -> Any:
    """GET `url` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_for_jupyter(base_url: str, container: Any, timeout: float = 120.0) -> dict[str, Any]:
    """Poll `<base_url>api/status` until Jupyter answers; fail with the container's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            raise AssertionError(f"the container exited:\n{container.logs().decode()}")
        try:
            return dict(get_json(base_url + "api/status", timeout=5))
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"Jupyter did not answer in {timeout} s:\n{container.logs().decode()}")


def run_in_kernel(base_url: str, kernel: str, code: str, timeout: float = 120.0) -> str:
    """Start kernel `kernel`, run `code` in it, delete it; return what it printed.

    Raises:
        AssertionError: the code raised (with the kernel's traceback) or timed out.
    """
    request = urllib.request.Request(
        base_url + "api/kernels",
        data=json.dumps({"name": kernel}).encode(),
        headers={"Content-Type": "application/json", **XSRF},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        kernel_id = json.load(response)["id"]
    try:
        channels = base_url.replace("http://", "ws://", 1) + f"api/kernels/{kernel_id}/channels"
        return asyncio.run(asyncio.wait_for(_execute(channels, code), timeout))
    finally:
        delete = urllib.request.Request(
            base_url + f"api/kernels/{kernel_id}", headers=XSRF, method="DELETE"
        )
        urllib.request.urlopen(delete, timeout=30).close()


async def _execute(channels: str, code: str) -> str:
    from tornado.websocket import websocket_connect

    session = uuid.uuid4().hex
    socket = await websocket_connect(f"{channels}?session_id={session}")
    msg_id = uuid.uuid4().hex
    socket.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "session": session,
                    "username": "tests",
                    "msg_type": "execute_request",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    printed = []
    try:
        while True:
            raw = await socket.read_message()
            if raw is None:
                raise AssertionError("the kernel's websocket closed before the code finished")
            message = json.loads(raw)
            if (message.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(printed)
    finally:
        socket.close()
