"""Parse request bodies of the Seldon protocol and the Open Inference Protocol (V2).

Seldon clients send the message as a JSON body (gateways, curl), form-encoded as
`json=<message>` (the official `SeldonClient.microservice`), or as a `?json=` query
argument; the Seldon wrapper accepts all three, and so do we. Every problem raises
`BadInput` with a message that names the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import numpy.typing as npt
import orjson

from hello_kubeflow.serving.features import N_FEATURES, BadInput, as_features, from_flat

SELDON_EXAMPLE = '{"data": {"names": ["X1", ..., "X784"], "ndarray": [[784 numbers in [0, 1]]]}}'
V2_EXAMPLE = (
    '{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", '
    '"data": [784 numbers in [0, 1]]}]}'
)
V2_OUTPUT = "probabilities"
V2_NUMERIC_TYPES = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


@dataclass(frozen=True, slots=True)
class SeldonRequest:
    """A valid Seldon prediction request.

    Attributes:
        features: float32 (n, 784) pixels in [0, 1].
        kind: `ndarray` or `tensor`: the answer uses the same form.
        puid: the caller's prediction id (`meta.puid`), echoed back; None if absent.
        tags: the caller's `meta.tags`, echoed back as Seldon does.
    """

    features: npt.NDArray[np.float32]
    kind: str
    puid: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class V2Request:
    """A valid Open Inference Protocol inference request.

    Attributes:
        features: float32 (n, 784) pixels in [0, 1].
        id: the request id, echoed back; None if absent.
    """

    features: npt.NDArray[np.float32]
    id: str | None = None


def decode_json(body: bytes | str) -> Any:
    """Decode a JSON document, saying plainly what is wrong with a bad one.

    Raises:
        BadInput: an empty body, or one that is not JSON (NaN and Infinity, which some
            encoders write, are named: they are neither JSON nor pixel values).
    """
    if not body or not body.strip():
        raise BadInput(f"the request body is empty: send a JSON message such as {SELDON_EXAMPLE}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raw = body.encode() if isinstance(body, str) else body
        hint = ""
        if b"NaN" in raw or b"Infinity" in raw:
            hint = (
                "; NaN and Infinity are not JSON numbers, nor pixel values: send numbers in [0, 1]"
            )
        raise BadInput(f"the request body is not valid JSON ({exc}){hint}") from None


def seldon_message(body: bytes, content_type: str, query_json: str | None = None) -> Any:
    """The Seldon message of a request, wherever the client put it.

    Args:
        body: the raw request body.
        content_type: the request's Content-Type header ("" when absent).
        query_json: the `json` query argument, if any.

    Raises:
        BadInput: a form without a `json` field, multipart forms (415), or bad JSON.
    """
    if content_type.startswith(_MULTIPART):
        raise BadInput(
            "multipart/form-data is not supported: send the message as a JSON body, or "
            "form-encoded as json=<message>",
            status=415,
        )
    if content_type.startswith(_FORM):
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadInput("the form body is not UTF-8 text") from None
        if "json" not in form:
            raise BadInput(f"the form has no json field: send json={SELDON_EXAMPLE}")
        return decode_json(form["json"][0])
    if query_json:
        return decode_json(query_json)
    return decode_json(body)


def parse_seldon(message: Any) -> SeldonRequest:
    """Validate a Seldon prediction message: `data.ndarray` or `data.tensor` of images.

    Raises:
        BadInput: naming what is missing or malformed.
    """
    if not isinstance(message, dict):
        raise BadInput(f"the message must be a JSON object like {SELDON_EXAMPLE}")
    data = message.get("data")
    if data is None:
        for other in ("jsonData", "strData", "binData"):
            if other in message:
                raise BadInput(f"this model takes data.ndarray or data.tensor, not {other}")
        raise BadInput(f'the message has no "data": send {SELDON_EXAMPLE}')
    if not isinstance(data, dict):
        raise BadInput(f'"data" must be an object holding "ndarray" or "tensor": {SELDON_EXAMPLE}')
    if "ndarray" in data:
        kind = "ndarray"
        features = as_features(data["ndarray"], field="data.ndarray")
    elif "tensor" in data:
        kind = "tensor"
        tensor = data["tensor"]
        if not isinstance(tensor, dict):
            raise BadInput('data.tensor must be an object {"shape": [n, 784], "values": [...]}')
        shaped = from_flat(tensor.get("values"), tensor.get("shape"), field="data.tensor")
        features = as_features(shaped, field="data.tensor")
    else:
        raise BadInput(
            '"data" has neither "ndarray" nor "tensor" (tftensor is not supported): '
            f"send {SELDON_EXAMPLE}"
        )
    _check_names(data.get("names"))
    meta = message.get("meta")
    if not isinstance(meta, dict):
        return SeldonRequest(features, kind)
    puid = meta.get("puid")
    tags = meta.get("tags")
    return SeldonRequest(
        features,
        kind,
        puid if isinstance(puid, str) and puid else None,
        tags if isinstance(tags, dict) else {},
    )


def parse_v2(message: Any) -> V2Request:
    """Validate an Open Inference Protocol request: one numeric tensor of shape [n, 784].

    Raises:
        BadInput: naming what is missing or malformed.
    """
    if not isinstance(message, dict):
        raise BadInput(f"the request must be a JSON object like {V2_EXAMPLE}")
    inputs = message.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadInput(f'"inputs" must be a list of exactly one tensor: {V2_EXAMPLE}')
    tensor = inputs[0]
    name = tensor.get("name")
    where = f"inputs[0] ({name})" if isinstance(name, str) else "inputs[0]"
    datatype = tensor.get("datatype")
    if datatype not in V2_NUMERIC_TYPES:
        raise BadInput(f"{where} datatype must be FP32 (or another numeric type); got {datatype!r}")
    shaped = from_flat(tensor.get("data"), tensor.get("shape"), field=where)
    features = as_features(shaped, field=where)
    _check_outputs(message.get("outputs"))
    request_id = message.get("id")
    return V2Request(features, request_id if isinstance(request_id, str) else None)


def _check_names(names: Any) -> None:
    if names is None or names == []:
        return
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadInput('data.names must be a list of feature names ("X1" ... "X784")')
    if len(names) != N_FEATURES:
        raise BadInput(
            f"data.names has {len(names)} names for {N_FEATURES} features: send "
            '"X1" ... "X784", or no names'
        )


def _check_outputs(outputs: Any) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise BadInput('"outputs" must be a list of {"name": ...} objects')
    for requested in outputs:
        if requested.get("name") != V2_OUTPUT:
            raise BadInput(
                f"this model has one output, {V2_OUTPUT!r}; got a request for "
                f"{requested.get('name')!r}"
            )
