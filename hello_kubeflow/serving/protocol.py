"""Parse request bodies of the Seldon protocol and the Open Inference Protocol (V2).

Seldon clients send the message as a JSON body (gateways, curl), form-encoded as
`json=<message>` (the official `SeldonClient.microservice`), or as a `?json=` query
argument; the Seldon wrapper accepts all three, and so do we. Every problem raises
`BadInput` with a message that names the field and the fix.

Where the Seldon Core 1.17.1 wrapper is the reference, the file is cited
(SeldonIO/seldon-core, tag v1.17.1, under `python/seldon_core/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import numpy.typing as npt
import orjson

from hello_kubeflow.serving.features import BadInput, as_features, check_names, from_flat

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
        kind: `ndarray` or `tensor`: the answer uses the same form (`tensor` for
            `jsonData`, as the wrapper answers it).
        puid: the caller's prediction id (`meta.puid`), echoed back; None if absent.
        tags: the caller's `meta.tags`, echoed back as Seldon does.
        request_path: the caller's `meta.requestPath`, echoed back as Seldon does.
    """

    features: npt.NDArray[np.float32]
    kind: str
    puid: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    request_path: dict[str, Any] = field(default_factory=dict)


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


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header, lower-cased (`Application/JSON; x` -> ...json).

    Media types are case-insensitive (RFC 9110, 8.3.1), as werkzeug, under the
    Seldon wrapper, reads them.
    """
    return content_type.partition(";")[0].strip().lower()


def seldon_text(body: bytes, content_type: str, query_json: str | None = None) -> bytes | str:
    """The JSON text of a Seldon message, wherever the client put it.

    As the wrapper's `get_request` (flask_utils.py): the form's `json` field, else
    the `json` query argument, else the body.

    Args:
        body: the raw request body.
        content_type: the request's Content-Type header ("" when absent).
        query_json: the `json` query argument, if any.

    Raises:
        BadInput: a form without a `json` field, multipart forms (415), a form that
            is not UTF-8.
    """
    media = media_type(content_type)
    if media == _MULTIPART:
        raise BadInput(
            "multipart/form-data is not supported: send the message as a JSON body, or "
            "form-encoded as json=<message>",
            status=415,
        )
    if media == _FORM:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadInput("the form body is not UTF-8 text") from None
        if "json" in form:
            return form["json"][0]
        if not query_json:
            raise BadInput(f"the form has no json field: send json={SELDON_EXAMPLE}")
    if query_json:
        return query_json
    return body


def may_hold_booleans(text: bytes | str) -> bool:
    """False when JSON `text` cannot hold `true` or `false` (neither word occurs in it).

    JSON literals are never escaped, so a message without these words holds no
    boolean, and the per-value search for booleans among numbers can be skipped.
    A one-character search (memchr) for `u` and `f` goes first: a request of
    digits and the usual keys has neither, and is cleared in well under 1 us.
    """
    if isinstance(text, str):
        return ("u" in text and "true" in text) or ("f" in text and "false" in text)
    return (b"u" in text and b"true" in text) or (b"f" in text and b"false" in text)


def parse_seldon(message: Any, *, booleans_possible: bool = True) -> SeldonRequest:
    """Validate a Seldon prediction message: `data.ndarray`, `data.tensor` or `jsonData` rows.

    Args:
        message: the decoded JSON message.
        booleans_possible: False when the message's text has no `true`/`false`
            (`may_hold_booleans`): skips the search for booleans among the pixels.

    Raises:
        BadInput: naming what is missing or malformed.
    """
    if not isinstance(message, dict):
        raise BadInput(f"the message must be a JSON object like {SELDON_EXAMPLE}")
    data = message.get("data")
    if data is None and "jsonData" in message:
        # The wrapper hands jsonData to predict() as it is, and answers a numeric
        # result as a tensor when the request had no "data" (utils.py,
        # extract_request_parts_json and construct_response_json).
        kind = "tensor"
        features = as_features(
            message["jsonData"], field="jsonData", booleans_possible=booleans_possible
        )
    elif data is None:
        for other in ("strData", "binData"):
            if other in message:
                raise BadInput(
                    f"this model takes data.ndarray, data.tensor or jsonData rows, not {other}"
                )
        raise BadInput(f'the message has no "data": send {SELDON_EXAMPLE}')
    elif not isinstance(data, dict):
        raise BadInput(f'"data" must be an object holding "ndarray" or "tensor": {SELDON_EXAMPLE}')
    elif "ndarray" in data:
        kind = "ndarray"
        features = as_features(
            data["ndarray"], field="data.ndarray", booleans_possible=booleans_possible
        )
    elif "tensor" in data:
        kind = "tensor"
        tensor = data["tensor"]
        if not isinstance(tensor, dict):
            raise BadInput('data.tensor must be an object {"shape": [n, 784], "values": [...]}')
        shaped = from_flat(
            tensor.get("values"),
            tensor.get("shape"),
            field="data.tensor",
            booleans_possible=booleans_possible,
        )
        features = as_features(shaped, field="data.tensor", booleans_possible=False)
    else:
        raise BadInput(
            '"data" has neither "ndarray" nor "tensor" (tftensor is not supported): '
            f"send {SELDON_EXAMPLE}"
        )
    if isinstance(data, dict):
        check_names(data.get("names"))
    return _with_meta(features, kind, message.get("meta"))


def parse_v2(message: Any, *, booleans_possible: bool = True) -> V2Request:
    """Validate an Open Inference Protocol request: one numeric tensor of shape [n, 784].

    Args:
        message: the decoded JSON request.
        booleans_possible: as for `parse_seldon`.

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
    if not isinstance(datatype, str) or datatype not in V2_NUMERIC_TYPES:
        raise BadInput(
            f"{where} datatype must be FP32 (or another numeric type); got "
            f"{_shown(orjson.dumps(datatype).decode())}"
        )
    shaped = from_flat(
        tensor.get("data"), tensor.get("shape"), field=where, booleans_possible=booleans_possible
    )
    features = as_features(shaped, field=where, booleans_possible=False)
    _check_outputs(message.get("outputs"))
    request_id = message.get("id")
    return V2Request(features, request_id if isinstance(request_id, str) else None)


def _with_meta(features: npt.NDArray[np.float32], kind: str, meta: Any) -> SeldonRequest:
    """The request with what its `meta` asks to be echoed: puid, tags, requestPath."""
    if meta is None:
        return SeldonRequest(features, kind)
    if not isinstance(meta, dict):
        raise BadInput('"meta" must be an object like {"puid": "...", "tags": {...}}')
    puid = meta.get("puid")
    tags = meta.get("tags")
    request_path = meta.get("requestPath")
    if request_path is not None and not isinstance(request_path, dict):
        raise BadInput('meta.requestPath must be an object {"model name": "image", ...}')
    return SeldonRequest(
        features,
        kind,
        puid if isinstance(puid, str) and puid else None,
        tags if isinstance(tags, dict) else {},
        request_path or {},
    )


def _shown(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
