"""Validate a batch of MNIST images: rows of 784 numbers in [0, 1] (numpy only, for the wrapper)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

N_FEATURES = 784
N_CLASSES = 10
FEATURE_NAMES: tuple[str, ...] = tuple(f"X{i}" for i in range(1, N_FEATURES + 1))


class BadInput(ValueError):
    """Input the model cannot take: `message` says what is wrong and the fix, `status` the code."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __reduce__(self) -> tuple[type[BadInput], tuple[str, int]]:
        # Pickled back from the parsing process: keep the status (the default keeps args).
        return type(self), (self.message, self.status)


def as_features(
    values: Any, *, field: str = "data.ndarray", booleans_possible: bool = True
) -> npt.NDArray[np.float32]:
    """The model's input, a C-contiguous float32 (n, 784) array, or what is wrong with `values`.

    Args:
        values: rows of 784 pixel values scaled to [0, 1], as nested lists or an array.
        field: where the values came from in the request, named in error messages.
        booleans_possible: False skips the search for booleans among numbers (no `true`).

    Raises:
        BadInput: not a non-empty 2-D batch of 784-value rows of numbers in [0, 1]
            (with a hint for unscaled 0-255 pixels).
    """
    array = _numbers(values, field, booleans_possible)
    if array.ndim != 2 or not array.shape[0]:
        raise BadInput(_dimensions_message(array, field))
    columns = array.shape[1]
    if columns != N_FEATURES:
        raise BadInput(
            f"{field} rows have {columns} values, expected {N_FEATURES} "
            "(one per pixel of a 28x28 image, row by row)"
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        row, column = np.argwhere(~np.isfinite(array))[0]
        raise BadInput(
            f"{field} holds {array[row, column]} at row {row}, column {column}: "
            "NaN and infinity are not pixel values; send numbers in [0, 1]"
        )
    low, high = array.min(), array.max()
    if low < 0 or high > 1:
        raise BadInput(_range_message(array, float(low), float(high), field))
    return np.ascontiguousarray(array, dtype=np.float32)


def from_flat(
    values: Any, shape: Any, *, field: str, booleans_possible: bool = True
) -> npt.NDArray[Any]:
    """Reshape a tensor's values (Seldon `tensor.values`, V2 `data`) to its 2-D `shape`.

    Raises:
        BadInput: a shape that is not two whole numbers, values that are not a list
            of numbers, or a count of values that does not match the shape.
    """
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadInput(
            f"{field} shape must be a list of whole numbers, e.g. [1, 784]; got {_show(shape)}"
        )
    if len(shape) != 2:
        # numpy cannot even hold more than 64 dimensions; the model takes exactly two.
        raise BadInput(
            f"{field} shape has {len(shape)} dimension(s), {_show(shape)}: send a 2-D shape "
            "[n, 784] (n images of 784 pixels)"
        )
    if not isinstance(values, list):
        raise BadInput(f"{field} values must be a list of numbers; got {_describe(values)}")
    array = _numbers(values, field, booleans_possible)
    expected = math.prod(shape)
    if array.size != expected:
        raise BadInput(
            f"{field} has {array.size} values but its shape {shape} needs {expected}: "
            "send n x 784 values with shape [n, 784]"
        )
    try:
        return array.reshape(shape)
    except ValueError:  # e.g. [0, 10**30]: no values, but a dimension numpy cannot hold
        raise BadInput(
            f"{field} shape {_show(shape)} is not one numpy can hold: send [n, 784]"
        ) from None


def check_names(names: Any) -> None:
    """Accept no names, or 784 feature names; else BadInput (our server and the wrapper's class)."""
    if names is None or names == []:
        return
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadInput('data.names must be a list of feature names ("X1" ... "X784")')
    if len(names) != N_FEATURES:
        raise BadInput(
            f"data.names has {len(names)} names for {N_FEATURES} features: send "
            '"X1" ... "X784", or no names'
        )


def _describe(value: Any) -> str:
    """A JSON value as a person reads it: `a string ('7')`, `null`, `an object`."""
    if value is None:
        return "null"
    if isinstance(value, bool | np.bool_):
        return f"{str(bool(value)).lower()} (a boolean)"
    if isinstance(value, str | np.str_ | bytes):
        return f"a string ({_show(value)})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, int | float | np.number):
        return f"the number {value}"
    return f"a {type(value).__name__}"


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, ending in "...", for an error message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any) -> str:
    return shorten(repr(value.item() if isinstance(value, np.generic) else value), 40)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _numbers(values: Any, field: str, booleans_possible: bool = True) -> npt.NDArray[Any]:
    """`values` as a numeric array, or the BadInput saying why they are not one."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):
        raise BadInput(_ragged_message(values, field)) from None
    if array.dtype.kind not in "fiu":
        raise BadInput(_not_numbers_message(values, array, field))
    if booleans_possible and isinstance(values, list):
        # numpy reads [true, 0.5] as [1.0, 0.5]: look for booleans it turned into numbers.
        where = _boolean_at(values)
        if where is not None:
            path, value = where
            raise BadInput(
                f"{field}{path} is {_describe(value)}: every value must be a number in [0, 1]"
            )
    return array


def _boolean_at(values: list[Any]) -> tuple[str, bool] | None:
    """Where the first boolean is in nested lists (`[0][5]`) and its value, if any."""
    for index, item in enumerate(values):
        if item is True or item is False:
            return f"[{index}]", item
        if isinstance(item, list):
            inner = _boolean_at(item)
            if inner is not None:
                return f"[{index}]{inner[0]}", inner[1]
    return None


def _not_numbers_message(values: Any, array: npt.NDArray[Any], field: str) -> str:
    if array.ndim == 0:
        return f"{field} must be a list of rows [[784 numbers], ...]; got {_describe(values)}"
    for index in np.ndindex(array.shape):
        item = array[index]
        if not _is_number(item):
            where = "".join(f"[{i}]" for i in index)
            return f"{field}{where} is {_describe(item)}: every value must be a number in [0, 1]"
    return f"{field} must hold numbers in [0, 1]; got values of type {array.dtype}"


def _ragged_message(values: Any, field: str) -> str:
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        return f"{field} must be a list of rows [[784 numbers], ...]; got {_describe(values)}"
    lengths: list[int] = []
    for index, row in enumerate(values):
        if not isinstance(row, list | tuple | np.ndarray):
            return f"{field}[{index}] is {_describe(row)}, expected a row: a list of 784 numbers"
        lengths.append(len(row))
        if lengths[0] != lengths[-1]:
            return (
                f"{field} rows have unequal lengths: row 0 has {lengths[0]} values, row "
                f"{index} has {lengths[-1]}; every row must have {N_FEATURES}"
            )
    return f"{field} must be a list of rows [[784 numbers], ...] nested exactly two deep"


def _dimensions_message(array: npt.NDArray[Any], field: str) -> str:
    if array.ndim == 1 and array.size == N_FEATURES:
        return (
            f"{field} is one flat list of {N_FEATURES} numbers; send a batch of rows: "
            "wrap it in a list, [[784 numbers]]"
        )
    if array.size == 0 and array.ndim <= 2:
        return f"{field} is an empty batch: send at least one row of 784 values"
    return (
        f"{field} must be a 2-D batch [[784 numbers], ...]; got {array.ndim} "
        f"dimension(s), shape {list(array.shape)}"
    )


def _range_message(array: npt.NDArray[Any], low: float, high: float, field: str) -> str:
    outside = (array < 0) | (array > 1)
    row, column = np.argwhere(outside)[0]
    message = (
        f"{field} values must be in [0, 1] (pixels scaled by x / 255): {int(outside.sum())} "
        f"of {array.size} are outside, e.g. row {row}, column {column} is "
        f"{array[row, column]:g} (values range from {low:g} to {high:g})."
    )
    if low >= 0 and high <= 255:
        message += (
            " They look like raw 0-255 pixels: divide them by 255, the scaling the model "
            "was trained with."
        )
    return message
