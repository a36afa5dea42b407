"""Parse request bodies of the Seldon protocol and the Open Inference Protocol (V2).

Cited: SeldonIO/seldon-core, tag v1.17.1 (the wrapper under `python/seldon_core/`, the
message types in `proto/prediction.proto`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import numpy.typing as npt
import orjson

from hello_kubeflow.serving.features import BadInput, as_features, check_names, from_flat, shorten

SELDON_EXAMPLE = '{"data": {"names": ["X1", ..., "X784"], "ndarray": [[784 numbers in [0, 1]]]}}'
V2_EXAMPLE = (
    '{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", '
    '"data": [784 numbers in [0, 1]]}]}'
)
V2_OUTPUT = "probabilities"
_V2_INTEGER_TYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
V2_NUMERIC_TYPES = _V2_INTEGER_TYPES | {"FP16", "FP32", "FP64"}


@dataclass(frozen=True, slots=True)
class SeldonRequest:
    """A valid Seldon prediction request: float32 (n, 784) pixels in [0, 1] and what is echoed.

    `kind` is the answer's form, `ndarray` or `tensor` (also for `jsonData`, as the wrapper);
    `puid` (None if absent), `tags`, `request_path` and `metrics` come from `meta`.
    """

    features: npt.NDArray[np.float32]
    kind: str
    puid: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    request_path: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class V2Request:
    """A valid Open Inference Protocol request: float32 (n, 784) pixels, the `id` to echo back."""

    features: npt.NDArray[np.float32]
    id: str | None = None


def decode_json(body: bytes | str) -> Any:
    """Decode a JSON document; BadInput for an empty body or not JSON (NaN, Infinity named)."""
    if not body or not body.strip():
        raise BadInput(f"the request body is empty: send a JSON message such as {SELDON_EXAMPLE}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raw = body.encode() if isinstance(body, str) else body
        nan = b"NaN" in raw or b"Infinity" in raw
        hint = "; NaN and Infinity are not JSON numbers, nor pixel values: send numbers in [0, 1]"
        raise BadInput(f"the request body is not valid JSON ({exc}){hint if nan else ''}") from None


def media_type(content_type: str) -> str:
    """A Content-Type's media type, lower-cased: case-insensitive (RFC 9110, 8.3.1) as werkzeug."""
    return content_type.partition(";")[0].strip().lower()


def seldon_text(body: bytes, content_type: str, query_json: str | None = None) -> bytes | str:
    """A Seldon message's text: form `json`, query `json` or body (flask_utils.py `get_request`).

    Raises:
        BadInput: a form without a `json` field or not UTF-8; multipart forms (415).
    """
    media = media_type(content_type)
    if media == "multipart/form-data":
        raise BadInput(
            "multipart/form-data is not supported: send the message as a JSON body, or "
            "form-encoded as json=<message>",
            status=415,
        )
    if media == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadInput("the form body is not UTF-8 text") from None
        if "json" in form:
            return form["json"][0]
        if not query_json:
            raise BadInput(f"the form has no json field: send json={SELDON_EXAMPLE}")
    return query_json or body


def may_hold_booleans(text: bytes | str) -> bool:
    """False when JSON `text` cannot hold `true` or `false` (a memchr for `u` and `f` first)."""
    if isinstance(text, str):
        return ("u" in text and "true" in text) or ("f" in text and "false" in text)
    return (b"u" in text and b"true" in text) or (b"f" in text and b"false" in text)


def parse_seldon(message: Any, *, booleans_possible: bool = True) -> SeldonRequest:
    """Validate a Seldon prediction message: `data.ndarray`, `data.tensor` or `jsonData` rows.

    `booleans_possible` False skips the search for booleans (`may_hold_booleans`).

    Raises:
        BadInput: naming what is missing or malformed.
    """
    if not isinstance(message, dict):
        raise BadInput(f"the message must be a JSON object like {SELDON_EXAMPLE}")
    data = message.get("data")
    if data is None and "jsonData" in message:
        # Answered as a tensor, as the wrapper does (utils.py, construct_response_json).
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

    Raises:
        BadInput: naming what is missing or malformed.
    """
    if not isinstance(message, dict):
        raise BadInput(f"the request must be a JSON object like {V2_EXAMPLE}")
    inputs = message.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadInput(f'"inputs" must be a list of exactly one tensor: {V2_EXAMPLE}')
    request_id = message.get("id")
    if request_id is not None and not isinstance(request_id, str):
        # "id" : $string (kserve/kserve v0.20.0, docs/predict-api/v2/required_api.md).
        raise BadInput(f'"id" must be a string, e.g. "42"; got {_json_shown(request_id)}')
    tensor = inputs[0]
    name = tensor.get("name")
    if not isinstance(name, str):
        # $request_input's "name" : $string; SeldonIO/MLServer 1.7.1 mlserver/types/dataplane.py.
        raise BadInput(
            f'inputs[0] needs a "name" (a string, e.g. "input"); got {_json_shown(name)}: '
            f"send {V2_EXAMPLE}"
        )
    where = f"inputs[0] ({name})"
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in V2_NUMERIC_TYPES:
        raise BadInput(
            f"{where} datatype must be FP32 (or another numeric type); got {_json_shown(datatype)}"
        )
    shaped = from_flat(
        tensor.get("data"), tensor.get("shape"), field=where, booleans_possible=booleans_possible
    )
    if datatype in _V2_INTEGER_TYPES:
        _check_whole(shaped, where, datatype)
    features = as_features(shaped, field=where, booleans_possible=False)
    _check_outputs(message.get("outputs"))
    return V2Request(features, request_id)


def _with_meta(features: npt.NDArray[np.float32], kind: str, meta: Any) -> SeldonRequest:
    """The request with what `meta` echoes: all but `routing` (utils.py, `construct_response_json`),
    each typed as `proto/prediction.proto`'s Meta, as the wrapper's feedback parser wants it."""
    if meta is None:
        return SeldonRequest(features, kind)
    if not isinstance(meta, dict):
        raise BadInput('"meta" must be an object like {"puid": "...", "tags": {...}}')
    check_meta(meta)
    return SeldonRequest(
        features,
        kind,
        meta.get("puid") or None,
        meta.get("tags") or {},
        meta.get("requestPath") or {},
        meta.get("metrics") or [],
    )


def check_meta(meta: dict[str, Any], where: str = "meta") -> None:
    """Refuse a `meta` field (`where` in the request) not of its type in Seldon's Meta message.

    Raises:
        BadInput: naming the first field of the wrong type and the type it needs.
    """
    for name, (valid, wanted) in _META_TYPES.items():
        value = meta.get(name)
        if value is not None and not valid(value):
            raise BadInput(
                f"{where}.{name} must be {wanted} (as Seldon's Meta message types it); got "
                f"{_json_shown(value)}"
            )


def _is_object(value: Any, of: type | tuple[type, ...] | None = None) -> bool:
    """True for a JSON object (whose values are all of type `of`, when given)."""
    if not isinstance(value, dict):
        return False
    return of is None or all(
        isinstance(item, of) and not isinstance(item, bool) for item in value.values()
    )


def _is_metric(value: Any) -> bool:
    """True for a Seldon Metric: key, type COUNTER/GAUGE/TIMER, value, string tags."""
    if not isinstance(value, dict):
        return False
    kind, number = value.get("type", "COUNTER"), value.get("value", 0)
    return (
        isinstance(value.get("key", ""), str)
        and isinstance(kind, str)
        and kind in _METRIC_TYPES
        and isinstance(number, int | float)
        and not isinstance(number, bool)
        and _is_object(value.get("tags", {}), str)
    )


_METRIC_TYPES = frozenset({"COUNTER", "GAUGE", "TIMER"})


# proto/prediction.proto's Meta: puid string, tags map<string, Value>, routing map<string,
# int32>, requestPath map<string, string>, metrics repeated Metric.
_META_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "puid": (lambda v: isinstance(v, str), 'a string, e.g. "p-1"'),
    "tags": (_is_object, 'an object, e.g. {"team": "mnist"}'),
    "routing": (
        # whole and in int32's range: 3 or 3.0, as protobuf's JSON parser reads an int32
        lambda v: (
            _is_object(v, (int, float))
            and all(float(n).is_integer() and -(2**31) <= n < 2**31 for n in v.values())
        ),
        'an object of whole numbers (int32), e.g. {"model": 0}',
    ),
    "requestPath": (lambda v: _is_object(v, str), 'an object of strings, e.g. {"model": "image"}'),
    "metrics": (
        lambda v: isinstance(v, list) and all(_is_metric(m) for m in v),
        'a list of metrics, e.g. [{"key": "k", "type": "COUNTER", "value": 1}]',
    ),
}


def _json_shown(value: Any) -> str:
    """A JSON value as the client wrote it (null when it is missing), shortened."""
    return shorten(orjson.dumps(value).decode())


def _check_whole(values: npt.NDArray[Any], where: str, datatype: str) -> None:
    """Refuse fractions in an integer tensor (the spec's data must be of its datatype)."""
    if values.dtype.kind != "f":
        return
    fractional = values != np.round(values)
    if fractional.any():
        index = tuple(int(i) for i in np.argwhere(fractional)[0])
        raise BadInput(
            f"{where} is {datatype} but holds {values[index]:g} at {list(index)}: an integer "
            "datatype takes whole numbers only; send pixels scaled to [0, 1] as FP32"
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
