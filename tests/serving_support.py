"""Helpers for the serving tests: a tiny real model, free ports, small HTTP calls."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from hello_kubeflow.data.mnist import load_mnist, scale_pixels
from hello_kubeflow.model.train import build_metadata, save_model, train_model
from hello_kubeflow.settings import Settings

TRAIN_IMAGES = 1_000
TREES = 8
HTTP_TIMEOUT = 10.0


@cache
def mnist_test_pixels(mnist_dir: Path, count: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` MNIST test images scaled to [0, 1], and their labels."""
    data = load_mnist(Settings(mnist_dir=mnist_dir))
    return scale_pixels(data.x_test[:count]), data.y_test[:count]


def make_tiny_model(mnist_dir: Path, directory: Path) -> Path:
    """Train an 8-tree forest on 1,000 MNIST images and save it as a real artifact."""
    data = load_mnist(Settings(mnist_dir=mnist_dir))
    result = train_model(
        scale_pixels(data.x_train[:TRAIN_IMAGES]),
        data.y_train[:TRAIN_IMAGES],
        n_estimators=TREES,
        seed=0,
        n_jobs=1,
    )
    return save_model(directory, result, metadata=build_metadata(result, accuracy=0.9))


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def call(
    url: str,
    body: bytes | None = None,
    *,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One HTTP request; returns the status and the JSON body (or text when not JSON)."""
    request = urllib.request.Request(
        url,
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()
