"""Encode answers and error bodies of both protocols (orjson, numpy serialised natively)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from hello_kubeflow.serving.protocol import V2_OUTPUT

BAD_DATA = "MICROSERVICE_BAD_DATA"
INTERNAL_ERROR = "MICROSERVICE_INTERNAL_ERROR"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def new_puid() -> str:
    """A fresh prediction id (26 characters, like Seldon's), for callers that sent none."""
    return os.urandom(13).hex()


def seldon_prediction(
    probabilities: npt.NDArray[np.float32],
    *,
    kind: str,
    class_names: Sequence[str],
    puid: str,
    tags: dict[str, Any],
    request_path: dict[str, Any] | None = None,
    metrics: list[dict[str, Any]] | None = None,
) -> bytes:
    """A Seldon answer: `{"data": {"names": [...], "ndarray"|"tensor": ...}, "meta": {...}}`.

    `kind` is the request's form; `tags` are echoed, `request_path` and `metrics` when not
    empty (SeldonIO/seldon-core v1.17.1 python/seldon_core/utils.py `construct_response_json`).
    """
    if kind == "tensor":
        payload: dict[str, Any] = {
            "names": class_names,
            "tensor": {"shape": probabilities.shape, "values": probabilities.ravel()},
        }
    else:
        payload = {"names": class_names, "ndarray": probabilities}
    meta: dict[str, Any] = {"puid": puid, "tags": tags, "routing": {}}
    if request_path:
        meta["requestPath"] = request_path
    if metrics:
        meta["metrics"] = metrics
    return orjson.dumps({"data": payload, "meta": meta}, option=_NUMPY)


def v2_prediction(
    probabilities: npt.NDArray[np.float32],
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    class_names: Sequence[str],
) -> bytes:
    """A V2 answer: one FP32 output `probabilities` [n, 10], its class names comma-separated."""
    answer: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": [
            {
                "name": V2_OUTPUT,
                "shape": probabilities.shape,
                "datatype": "FP32",
                "parameters": {"class_names": ",".join(class_names)},
                "data": probabilities.ravel(),
            }
        ],
    }
    if request_id is not None:
        answer["id"] = request_id
    return orjson.dumps(answer, option=_NUMPY)


def seldon_feedback(kind: str, puid: str | None) -> bytes:
    """The wrapper's answer to feedback: an empty prediction of the request's form, its puid.

    As seldon_core/seldon_methods.py `send_feedback` (v1.17.1); protobuf JSON drops empty values.
    """
    data: dict[str, Any] = {"ndarray": []} if kind == "ndarray" else {"tensor": {"shape": [0]}}
    meta = {"puid": puid} if puid else {}
    return orjson.dumps({"data": data, "meta": meta})


def seldon_error(message: str, status: int, reason: str = BAD_DATA) -> bytes:
    """Seldon's error body: `{"status": {"code", "info", "reason", "status": "FAILURE"}}`."""
    return orjson.dumps(
        {"status": {"code": status, "info": message, "reason": reason, "status": "FAILURE"}}
    )


def v2_error(message: str) -> bytes:
    """The Open Inference Protocol's error body: `{"error": "..."}`."""
    return orjson.dumps({"error": message})


def json_bytes(document: Any) -> bytes:
    """Any JSON-able document (numpy arrays included) as bytes."""
    return orjson.dumps(document, option=_NUMPY)
