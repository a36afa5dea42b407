"""The protocols' request parsing at its edges (pure: no server)."""

from __future__ import annotations

from typing import Any

import pytest

from hello_kubeflow.serving.features import BadInput
from hello_kubeflow.serving.protocol import parse_seldon, parse_v2

PIXELS = [0.5] * 784


def _tensor(name: str = "input-0", shape: Any = (1, 784)) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "datatype": "FP32", "data": PIXELS}


def test_a_v2_request_takes_exactly_one_input_tensor() -> None:
    assert parse_v2({"inputs": [_tensor()]}).features.shape == (1, 784)
    with pytest.raises(BadInput, match='"inputs" must be a list of exactly one tensor'):
        parse_v2({"inputs": [_tensor("a"), _tensor("b")]})


@pytest.mark.parametrize("shape", [[True, 784], [1, True]], ids=["rows", "columns"])
def test_a_boolean_is_not_a_shape_dimension(shape: list[Any]) -> None:
    with pytest.raises(BadInput, match="shape"):
        parse_v2({"inputs": [_tensor(shape=shape)]})


def test_an_empty_puid_is_not_echoed_as_the_callers() -> None:
    """An empty puid is no id: the server makes one, as for a missing puid."""
    message = {"data": {"ndarray": [PIXELS]}, "meta": {"puid": ""}}

    assert parse_seldon(message).puid is None
    assert parse_seldon({**message, "meta": {"puid": "abc"}}).puid == "abc"
