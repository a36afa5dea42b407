"""The pod feed's retry loop, driven by a stand-in for the generated CoreV1Api."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import queue
import time
from pathlib import Path
from typing import Any

import hello_kubeflow
from hello_kubeflow.kube.feed import FeedMessage, PodFeed
from hello_kubeflow.retry import Backoff


class _Ended:
    """A watch response that ends at once (the feed then lists again)."""

    def __iter__(self) -> Any:
        return iter(())

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class _ResetOnce:
    """The first list fails with a bare connection reset (its message is empty)."""

    def __init__(self) -> None:
        self.lists = 0

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            return _Ended()
        self.lists += 1
        if self.lists == 1:
            raise ConnectionResetError()

        class Listed:
            data = json.dumps({"metadata": {"resourceVersion": "1"}, "items": []})

        return Listed()


def test_a_connection_reset_without_a_message_is_retried_not_reported_as_fatal() -> None:
    out: queue.Queue[FeedMessage] = queue.Queue()
    feed = PodFeed(
        _ResetOnce(),  # type: ignore[arg-type]
        "kubeflow",
        out,
        time.monotonic() + 10,
        Backoff(initial=0.01, maximum=0.02),
    )
    feed.start()
    try:
        first = out.get(timeout=5)
    finally:
        feed.stop()

    assert first.kind == "sync", first.error


def test_the_package_imports_from_the_kubernetes_client_only_what_it_exports() -> None:
    """Each name taken from a kubernetes submodule is re-exported by its package (public).

    `kubernetes.watch.watch.iter_resp_lines`, for one, is not: an upgrade may move it.
    """
    package_root = Path(hello_kubeflow.__file__).parent
    private = []
    for path in sorted(package_root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            parts = node.module.split(".")
            if parts[0] != "kubernetes" or len(parts) < 3:
                continue
            public = importlib.import_module(".".join(parts[:2]))
            private += [
                f"{path.relative_to(package_root)}: {node.module}.{alias.name}"
                for alias in node.names
                if not hasattr(public, alias.name)
            ]
    version = importlib.metadata.version("kubernetes")
    assert not private, f"internal names of kubernetes {version}, not exported: {private}"
