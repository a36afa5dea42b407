"""Prediction payloads out, answers in: the sanity check every query's answer must pass
(names `class:0` ... `class:9`, ten probabilities in [0, 1] summing to 1, a digit)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson

from hello_kubeflow.errors import SanityCheckError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Pixels: TypeAlias = "npt.NDArray[np.float32] | Sequence[Sequence[float]]"
"""A batch of (n, 784) pixels in [0, 1]: an array, or rows of floats (one image needs no numpy)."""

N_CLASSES = 10
EXPECTED_NAMES = tuple(f"class:{digit}" for digit in range(N_CLASSES))
SUM_TOLERANCE = 1e-3
FEATURE_NAMES = [f"X{i}" for i in range(1, 785)]
_SHOWN_CHARS = 120


@dataclass(frozen=True)
class Prediction:
    """One image's answer, checked: the digit (argmax), the ten probabilities (digit 0
    first), and the sanity check's one-line verdict."""

    digit: int
    probabilities: tuple[float, ...]
    verdict: str

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        """The `k` most probable digits with their probabilities, most probable first."""
        order = sorted(range(len(self.probabilities)), key=lambda d: -self.probabilities[d])
        return [(d, self.probabilities[d]) for d in order[:k]]


def seldon_payload(pixels: Pixels) -> bytes:
    """The Seldon request body for a batch of (n, 784) pixels in [0, 1]."""
    return orjson.dumps(
        {"data": {"names": FEATURE_NAMES, "ndarray": pixels}}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def v2_payload(pixels: Pixels, name: str = "input") -> bytes:
    """The Open Inference Protocol request body for a batch of (n, 784) pixels."""
    if isinstance(pixels, Sequence):
        shape = [len(pixels), len(pixels[0]) if pixels else 0]
        data: Any = [value for row in pixels for value in row]
    else:
        shape, data = list(pixels.shape), pixels.ravel()
    tensor = {"name": name, "shape": shape, "datatype": "FP32", "data": data}
    return orjson.dumps({"inputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY)


def check_answer(
    body: Any, protocol: str, *, rows: int, url: str = "the endpoint"
) -> list[Prediction]:
    """The sanity check: `rows` images' answers, each ten probabilities naming a digit.

    Args:
        body: the decoded JSON answer (or the raw text when it was not JSON), in `protocol`.
        rows: how many images were sent (one row of probabilities each).
        url: where the answer came from, named in the error.

    Returns:
        One `Prediction` per image, in order.

    Raises:
        SanityCheckError: naming the first thing wrong with the answer.
    """
    try:
        names, table = _seldon_parts(body) if protocol == "seldon" else _v2_parts(body)
        return _check_table(names, table, rows)
    except _Insane as problem:
        raise SanityCheckError(
            f"sanity check failed: {problem} (answer from {url}). A digit model must answer "
            "ten probabilities named class:0 ... class:9; check that the URL points at the "
            "MNIST model server"
        ) from None


class _Insane(Exception):
    """What is wrong with an answer, in a person's words."""


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=repr).decode()
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _object(body: Any, kind: str) -> dict[str, Any]:
    """`body`, checked to be a JSON object (`kind`) that is not an error message."""
    if not isinstance(body, dict):
        raise _Insane(f"the answer is {_show(body)}, not {kind}")
    status = body.get("status")
    if isinstance(status, dict) and status.get("status") in ("FAILURE", 1):
        error = status.get("info") or status
    elif "error" in body:
        error = body["error"]
    else:
        return body
    raise _Insane(f"the server answered an error instead of probabilities: {error}")


def _seldon_parts(answer: Any) -> tuple[Any, Any]:
    body = _object(answer, "a Seldon message (a JSON object with data)")
    data = body.get("data")
    if not isinstance(data, dict):
        for other in ("strData", "jsonData", "binData"):
            if other in body:
                raise _Insane(f"the answer is {other} {_show(body[other])}, not probabilities")
        raise _Insane(f"the answer has no data: {_show(body)}")
    if "ndarray" in data:
        return data.get("names"), data["ndarray"]
    if "tensor" in data:
        tensor = data["tensor"]
        if not isinstance(tensor, dict):
            raise _Insane(f"data.tensor is {_show(tensor)}, not {{shape, values}}")
        return data.get("names"), _reshape(tensor.get("values"), tensor.get("shape"), "data.tensor")
    raise _Insane(f"the answer's data holds neither ndarray nor tensor: {_show(data)}")


def _v2_parts(answer: Any) -> tuple[Any, Any]:
    body = _object(answer, "an inference response (a JSON object)")
    outputs = body.get("outputs")
    if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
        raise _Insane(f"the answer has no outputs: {_show(body)}")
    output = next(
        (o for o in outputs if isinstance(o, dict) and o.get("name") == "probabilities"), outputs[0]
    )
    parameters = output.get("parameters")
    names: Any = list(EXPECTED_NAMES)  # V2 has no names field: columns are digits in order
    if isinstance(parameters, dict) and "class_names" in parameters:
        raw = parameters["class_names"]
        names = raw.split(",") if isinstance(raw, str) else raw
    return names, _reshape(
        output.get("data"), output.get("shape"), f"output {output.get('name')!r}"
    )


def _reshape(values: Any, shape: Any, where: str) -> Any:
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise _Insane(f"{where} has shape {_show(shape)}, expected [images, 10]")
    if not isinstance(values, list):
        raise _Insane(f"{where} values are {_show(values)}, not a list of numbers")
    flat = values
    if flat and isinstance(flat[0], list):  # V2 allows nested data too
        flat = [v for row in flat for v in (row if isinstance(row, list) else [row])]
    if len(flat) != shape[0] * shape[1]:
        raise _Insane(f"{where} has {len(flat)} values for shape {shape}")
    return [flat[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]


def _check_table(names: Any, table: Any, rows: int) -> list[Prediction]:
    if not isinstance(names, list) or tuple(names) != EXPECTED_NAMES:
        raise _Insane(f"the class names are {_show(names)}, expected class:0 ... class:9 in order")
    if not isinstance(table, list):
        raise _Insane(f"the probabilities are {_show(table)}, not a list of rows")
    if len(table) != rows:
        raise _Insane(f"the answer has {len(table)} rows of probabilities for {rows} image(s)")
    return [_check_row(number, row) for number, row in enumerate(table)]


def _check_row(number: int, row: Any) -> Prediction:
    where = f"row {number}" if number else "the answer"
    if not isinstance(row, list):
        raise _Insane(f"{where} is {_show(row)}, not a list of ten probabilities")
    if len(row) != N_CLASSES:
        raise _Insane(
            f"{where} has {len(row)} probabilities, expected ten (one per digit): {_show(row)}"
        )
    for value in row:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Insane(f"{where} holds {_show(value)}, not a probability")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise _Insane(f"{where} holds {value}, a probability outside [0, 1]")
    total = math.fsum(row)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise _Insane(
            f"{where}'s probabilities sum to {total:.6g}, not 1 (within {SUM_TOLERANCE:g})"
        )
    # The names were checked to be class:0 ... class:9, so column d is the digit d.
    digit = max(range(N_CLASSES), key=lambda d: row[d])
    verdict = (
        f"ok: ten probabilities (class:0 ... class:9) summing to {total:.4f}, "
        f"argmax class:{digit} is the digit {digit}"
    )
    return Prediction(digit, tuple(float(v) for v in row), verdict)
