"""The protocols' request parsing at its edges (pure: no server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hello_kubeflow.serving.features import BadInput, as_features, from_flat
from hello_kubeflow.serving.protocol import (
    SELDON_EXAMPLE,
    V2_EXAMPLE,
    decode_json,
    may_hold_booleans,
    media_type,
    parse_seldon,
    parse_v2,
    seldon_text,
)

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


_Call = Callable[[], object]

BAD_INPUTS = [
    pytest.param(
        lambda: parse_seldon([1]),
        400,
        f"the message must be a JSON object like {SELDON_EXAMPLE}",
        id="seldon-not-object",
    ),
    pytest.param(
        lambda: parse_seldon({"strData": "x"}),
        400,
        "this model takes data.ndarray, data.tensor or jsonData rows, not strData",
        id="seldon-strData",
    ),
    pytest.param(
        lambda: parse_seldon({"binData": "x"}),
        400,
        "this model takes data.ndarray, data.tensor or jsonData rows, not binData",
        id="seldon-binData",
    ),
    pytest.param(
        lambda: parse_seldon({}),
        400,
        f'the message has no "data": send {SELDON_EXAMPLE}',
        id="seldon-no-data",
    ),
    pytest.param(
        lambda: parse_seldon({"data": [1]}),
        400,
        f'"data" must be an object holding "ndarray" or "tensor": {SELDON_EXAMPLE}',
        id="seldon-data-list",
    ),
    pytest.param(
        lambda: parse_seldon({"data": {"tftensor": {}}}),
        400,
        '"data" has neither "ndarray" nor "tensor" (tftensor is not supported): '
        f"send {SELDON_EXAMPLE}",
        id="seldon-tftensor",
    ),
    pytest.param(
        lambda: parse_seldon({"data": {"tensor": [1]}}),
        400,
        'data.tensor must be an object {"shape": [n, 784], "values": [...]}',
        id="seldon-tensor-list",
    ),
    pytest.param(
        lambda: parse_seldon({"data": {"ndarray": [PIXELS]}, "meta": []}),
        400,
        '"meta" must be an object like {"puid": "...", "tags": {...}}',
        id="seldon-meta-list",
    ),
    pytest.param(
        lambda: parse_seldon({"data": {"ndarray": [PIXELS]}, "meta": {"requestPath": "x"}}),
        400,
        'meta.requestPath must be an object of strings, e.g. {"model": "image"} '
        '(as Seldon\'s Meta message types it); got "x"',
        id="seldon-requestPath",
    ),
    pytest.param(
        lambda: parse_seldon({"data": {"ndarray": [PIXELS], "names": [1]}}),
        400,
        'data.names must be a list of feature names ("X1" ... "X784")',
        id="names-not-str",
    ),
    pytest.param(
        lambda: parse_seldon({"data": {"ndarray": [PIXELS], "names": ["a", "b", "c"]}}),
        400,
        ('data.names has 3 names for 784 features: send "X1" ... "X784", or no names'),
        id="names-3",
    ),
    pytest.param(
        lambda: parse_v2([]),
        400,
        f"the request must be a JSON object like {V2_EXAMPLE}",
        id="v2-not-object",
    ),
    pytest.param(
        lambda: parse_v2(
            {"inputs": [{"name": "x", "shape": [1, 784], "datatype": "BYTES", "data": PIXELS}]}
        ),
        400,
        ('inputs[0] (x) datatype must be FP32 (or another numeric type); got "BYTES"'),
        id="v2-datatype",
    ),
    pytest.param(
        lambda: parse_v2(
            {"inputs": [{"name": "x", "shape": [1, 784], "datatype": "B" * 80, "data": PIXELS}]}
        ),
        400,
        (
            "inputs[0] (x) datatype must be FP32 (or another numeric type); got "
            '"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB...'
        ),
        id="v2-datatype-long",
    ),
    pytest.param(
        lambda: parse_v2(
            {
                "inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32", "data": PIXELS}],
                "outputs": [{"name": "logits"}],
            }
        ),
        400,
        "this model has one output, 'probabilities'; got a request for 'logits'",
        id="v2-outputs",
    ),
    pytest.param(
        lambda: parse_v2(
            {
                "inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32", "data": PIXELS}],
                "outputs": {"name": "x"},
            }
        ),
        400,
        '"outputs" must be a list of {"name": ...} objects',
        id="v2-outputs-bad",
    ),
    pytest.param(
        lambda: decode_json(b"  "),
        400,
        f"the request body is empty: send a JSON message such as {SELDON_EXAMPLE}",
        id="empty-body",
    ),
    pytest.param(
        lambda: seldon_text(b"", "multipart/form-data; boundary=x"),
        415,
        (
            "multipart/form-data is not supported: send the message as a JSON body, "
            "or form-encoded as json=<message>"
        ),
        id="multipart",
    ),
    pytest.param(
        lambda: seldon_text(b"json=\xff", "application/x-www-form-urlencoded"),
        400,
        "the form body is not UTF-8 text",
        id="form-latin1",
    ),
    pytest.param(
        lambda: seldon_text(b"a=1", "application/x-www-form-urlencoded"),
        400,
        f"the form has no json field: send json={SELDON_EXAMPLE}",
        id="form-no-json",
    ),
    pytest.param(
        lambda: as_features(PIXELS),
        400,
        (
            "data.ndarray is one flat list of 784 numbers; send a batch of rows: "
            "wrap it in a list, [[784 numbers]]"
        ),
        id="flat",
    ),
    pytest.param(
        lambda: as_features([]),
        400,
        "data.ndarray is an empty batch: send at least one row of 784 values",
        id="empty-batch",
    ),
    pytest.param(
        lambda: as_features([[]]),
        400,
        (
            "data.ndarray rows have 0 values, expected 784 (one per pixel of a 28x28 "
            "image, row by row)"
        ),
        id="empty-rows",
    ),
    pytest.param(
        lambda: as_features([[0.5] * 10]),
        400,
        (
            "data.ndarray rows have 10 values, expected 784 (one per pixel of a "
            "28x28 image, row by row)"
        ),
        id="columns",
    ),
    pytest.param(
        lambda: as_features([[0.5] * 783 + [float("nan")]]),
        400,
        (
            "data.ndarray holds nan at row 0, column 783: NaN and infinity are not "
            "pixel values; send numbers in [0, 1]"
        ),
        id="nan",
    ),
    pytest.param(
        lambda: as_features([[0.5] * 783 + [200.0]]),
        400,
        (
            "data.ndarray values must be in [0, 1] (pixels scaled by x / 255): 1 of "
            "784 are outside, e.g. row 0, column 783 is 200 (values range from 0.5 "
            "to 200). They look like raw 0-255 pixels: divide them by 255, the "
            "scaling the model was trained with."
        ),
        id="range",
    ),
    pytest.param(
        lambda: as_features([[0.5] * 783 + [-1.0]]),
        400,
        (
            "data.ndarray values must be in [0, 1] (pixels scaled by x / 255): 1 of "
            "784 are outside, e.g. row 0, column 783 is -1 (values range from -1 to "
            "0.5)."
        ),
        id="range-neg",
    ),
    pytest.param(
        lambda: as_features([[[0.5]]]),
        400,
        (
            "data.ndarray must be a 2-D batch [[784 numbers], ...]; got 3 "
            "dimension(s), shape [1, 1, 1]"
        ),
        id="3d",
    ),
    pytest.param(
        lambda: as_features(5),
        400,
        ("data.ndarray must be a 2-D batch [[784 numbers], ...]; got 0 dimension(s), shape []"),
        id="scalar",
    ),
    pytest.param(
        lambda: as_features([["a"] * 784]),
        400,
        ("data.ndarray[0][0] is a string ('a'): every value must be a number in [0, 1]"),
        id="string",
    ),
    pytest.param(
        lambda: as_features([[0.5] * 5 + [True] + [0.5] * 778]),
        400,
        ("data.ndarray[0][5] is true (a boolean): every value must be a number in [0, 1]"),
        id="bool",
    ),
    pytest.param(
        lambda: as_features([[0.5] * 784, [0.5] * 3]),
        400,
        (
            "data.ndarray rows have unequal lengths: row 0 has 784 values, row 1 has "
            "3; every row must have 784"
        ),
        id="ragged",
    ),
    pytest.param(
        lambda: as_features([[0.5] * 784, 7]),
        400,
        "data.ndarray[1] is the number 7, expected a row: a list of 784 numbers",
        id="ragged-row-not-list",
    ),
    pytest.param(
        lambda: as_features([[[0.5], [0.5, 0.5]]]),
        400,
        ("data.ndarray must be a list of rows [[784 numbers], ...] nested exactly two deep"),
        id="ragged-deep",
    ),
    pytest.param(
        lambda: from_flat(PIXELS, [True, 784], field="t"),
        400,
        "t shape must be a list of whole numbers, e.g. [1, 784]; got [True, 784]",
        id="shape-bool",
    ),
    pytest.param(
        lambda: from_flat(PIXELS, [1, 1, 784], field="t"),
        400,
        (
            "t shape has 3 dimension(s), [1, 1, 784]: send a 2-D shape [n, 784] (n "
            "images of 784 pixels)"
        ),
        id="shape-3",
    ),
    pytest.param(
        lambda: from_flat(PIXELS, [], field="t"),
        400,
        "t shape must be a list of whole numbers, e.g. [1, 784]; got []",
        id="shape-empty",
    ),
    pytest.param(
        lambda: from_flat("abc", [1, 784], field="t"),
        400,
        "t values must be a list of numbers; got a string ('abc')",
        id="values-not-list",
    ),
    pytest.param(
        lambda: from_flat(PIXELS, [2, 784], field="t"),
        400,
        (
            "t has 784 values but its shape [2, 784] needs 1568: send n x 784 values "
            "with shape [n, 784]"
        ),
        id="values-count",
    ),
    pytest.param(
        lambda: from_flat([], [0, 10**30], field="t"),
        400,
        ("t shape [0, 1000000000000000000000000000000] is not one numpy can hold: send [n, 784]"),
        id="shape-huge",
    ),
    pytest.param(
        lambda: from_flat(None, [1, 784], field="t"),
        400,
        "t values must be a list of numbers; got null",
        id="describe-null",
    ),
    pytest.param(
        lambda: from_flat({}, [1, 784], field="t"),
        400,
        "t values must be a list of numbers; got an object",
        id="describe-obj",
    ),
    pytest.param(
        lambda: from_flat(3.5, [1, 784], field="t"),
        400,
        "t values must be a list of numbers; got the number 3.5",
        id="describe-num",
    ),
    pytest.param(
        lambda: from_flat(False, [1, 784], field="t"),
        400,
        "t values must be a list of numbers; got false (a boolean)",
        id="describe-bool",
    ),
    pytest.param(
        lambda: from_flat(PIXELS, ["x" * 50, 784], field="t"),
        400,
        (
            "t shape must be a list of whole numbers, e.g. [1, 784]; got "
            "['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."
        ),
        id="long-shape",
    ),
]


@pytest.mark.parametrize(("call", "status", "message"), BAD_INPUTS)
def test_every_bad_input_is_refused_with_its_whole_message(
    call: _Call, status: int, message: str
) -> None:
    """The client reads exactly this: what is wrong, where, and what to send instead."""
    with pytest.raises(BadInput) as caught:
        call()
    assert (caught.value.status, caught.value.message) == (status, message)


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (b'{"a": ', ""),
        (
            b'{"a": NaN}',
            "; NaN and Infinity are not JSON numbers, nor pixel values: send numbers in [0, 1]",
        ),
        (b'{"a": Infinity}', "; NaN and Infinity are not JSON numbers"),
        ('{"a": NaN}', "; NaN and Infinity are not JSON numbers"),
    ],
    ids=["cut", "nan", "infinity", "nan-text"],
)
def test_a_body_that_is_not_json_says_so_and_names_nan(body: bytes | str, hint: str) -> None:
    with pytest.raises(BadInput) as caught:
        decode_json(body)
    message = caught.value.message
    assert message.startswith("the request body is not valid JSON (")
    assert message.endswith(")") if not hint else f"){hint}" in message


def test_the_seldon_message_is_read_from_the_form_the_query_or_the_body() -> None:
    form = "application/x-www-form-urlencoded; charset=utf-8"
    assert seldon_text(b"json=%7B%7D&x=1", form) == "{}"
    assert seldon_text(b"x=1", form, query_json="[1]") == "[1]"
    assert seldon_text(b"{}", "Application/JSON", query_json="[2]") == "[2]"
    assert seldon_text(b"{}", "") == b"{}"
    assert decode_json(seldon_text(b"json=%5B3%5D", form)) == [3]


def test_a_media_type_is_compared_without_case_or_parameters() -> None:
    assert media_type(" Multipart/Form-Data ; boundary=x") == "multipart/form-data"
    with pytest.raises(BadInput):
        seldon_text(b"", "Multipart/Form-Data; boundary=x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[1, 0.5]", False), ("[true]", True), ("[false]", True), ("[1] # fu", False)],
)
def test_only_a_text_with_true_or_false_may_hold_booleans(text: str, expected: bool) -> None:
    assert may_hold_booleans(text) is expected
    assert may_hold_booleans(text.encode()) is expected


def test_seldon_echoes_puid_tags_and_request_path_and_answers_in_the_requests_form() -> None:
    meta = {"puid": "p1", "tags": {"a": 1}, "requestPath": {"m": "img"}}
    request = parse_seldon({"data": {"ndarray": [PIXELS]}, "meta": meta})
    assert (request.kind, request.puid, request.tags, request.request_path) == (
        "ndarray",
        "p1",
        {"a": 1},
        {"m": "img"},
    )
    with pytest.raises(BadInput, match=r'meta\.puid must be a string, e\.g\. "p-1"'):
        parse_seldon({"data": {"ndarray": [PIXELS]}, "meta": {"puid": 5}})
    tensor = parse_seldon({"data": {"tensor": {"shape": [1, 784], "values": PIXELS}}})
    assert tensor.kind == "tensor" and tensor.features.shape == (1, 784)
    assert parse_seldon({"jsonData": [PIXELS]}).kind == "tensor"


def test_v2_echoes_a_text_id_and_accepts_the_probabilities_output() -> None:
    message = {"id": "r1", "inputs": [_tensor()], "outputs": [{"name": "probabilities"}]}
    assert parse_v2(message).id == "r1"
    with pytest.raises(BadInput, match=r'"id" must be a string, e\.g\. "42"; got 7'):
        parse_v2({"id": 7, "inputs": [_tensor()]})


_RANGE = "data.ndarray values must be in [0, 1] (pixels scaled by x / 255): "
_RAW_PIXELS = (
    " They look like raw 0-255 pixels: divide them by 255, the scaling the model was trained with."
)


@pytest.mark.parametrize(
    ("last", "message"),
    [
        (
            255,
            f"{_RANGE}1 of 784 are outside, e.g. row 0, column 783 is 255 "
            f"(values range from 0 to 255).{_RAW_PIXELS}",
        ),
        (
            256,
            f"{_RANGE}1 of 784 are outside, e.g. row 0, column 783 is 256 "
            "(values range from 0 to 256).",
        ),
        (
            -0.5,
            f"{_RANGE}1 of 784 are outside, e.g. row 0, column 783 is -0.5 "
            "(values range from -0.5 to 0).",
        ),
    ],
    ids=["255-raw-pixels", "256-not-pixels", "negative"],
)
def test_values_outside_0_1_are_refused_with_a_hint_only_for_raw_pixels(
    last: float, message: str
) -> None:
    with pytest.raises(BadInput) as caught:
        as_features([[0] * 783 + [last]])
    assert caught.value.message == message


def test_0_and_1_are_pixel_values_and_any_numbers_become_float32_rows() -> None:
    features = as_features([[0] * 783 + [1], [1.0] * 784])
    assert features.dtype == np.float32 and features.flags["C_CONTIGUOUS"]
    assert features[0, -1] == 1.0 and features.shape == (2, 784)


_FORM = "application/x-www-form-urlencoded"
_DATATYPE = "inputs[0] (x) datatype must be FP32 (or another numeric type); got "


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: parse_seldon({"data": {"tensor": {"shape": [1, 2, 784], "values": PIXELS}}}),
            "data.tensor shape has 3 dimension(s), [1, 2, 784]: send a 2-D shape [n, 784] "
            "(n images of 784 pixels)",
        ),
        (
            lambda: parse_seldon({"data": {"tensor": {"shape": [1, 784], "values": [-1.0] * 784}}}),
            "data.tensor values must be in [0, 1] (pixels scaled by x / 255): 784 of 784 are "
            "outside, e.g. row 0, column 0 is -1 (values range from -1 to -1).",
        ),
        (
            lambda: parse_v2({"inputs": [{**_tensor("x"), "shape": [1, 1, 784]}]}),
            "inputs[0] (x) shape has 3 dimension(s), [1, 1, 784]: send a 2-D shape [n, 784] "
            "(n images of 784 pixels)",
        ),
        (
            lambda: parse_v2({"inputs": [{**_tensor("x"), "data": [-1.0] * 784}]}),
            "inputs[0] (x) values must be in [0, 1] (pixels scaled by x / 255): 784 of 784 are "
            "outside, e.g. row 0, column 0 is -1 (values range from -1 to -1).",
        ),
        (
            lambda: parse_v2({"inputs": [_tensor()], "outputs": {}}),
            '"outputs" must be a list of {"name": ...} objects',
        ),
        (
            lambda: parse_v2({"inputs": [{**_tensor(), "name": "x", "datatype": "B" * 58}]}),
            f'{_DATATYPE}"{"B" * 58}"',
        ),
        (
            lambda: parse_v2({"inputs": [{**_tensor(), "name": "x", "datatype": "B" * 59}]}),
            f'{_DATATYPE}"{"B" * 56}...',
        ),
        (
            lambda: decode_json(seldon_text(b"json=", _FORM)),
            f"the request body is empty: send a JSON message such as {SELDON_EXAMPLE}",
        ),
        (
            lambda: parse_seldon({"data": {"ndarray": [[True, *PIXELS[1:]]]}}),
            "data.ndarray[0][0] is true (a boolean): every value must be a number in [0, 1]",
        ),
        (
            lambda: parse_v2({"inputs": [{**_tensor("x"), "data": [False, *PIXELS[1:]]}]}),
            "inputs[0] (x)[0] is false (a boolean): every value must be a number in [0, 1]",
        ),
    ],
    ids=[
        "seldon-tensor-shape",
        "seldon-tensor-range",
        "v2-shape",
        "v2-range",
        "v2-outputs-object",
        "datatype-60-chars-whole",
        "datatype-61-chars-cut",
        "form-with-an-empty-json-field",
        "seldon-boolean-by-default",
        "v2-boolean-by-default",
    ],
)
def test_each_message_names_the_field_the_problem_is_in(call: _Call, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        call()
    assert caught.value.message == message


def test_a_seldon_message_in_the_query_is_read_when_the_body_is_empty() -> None:
    assert decode_json(seldon_text(b"", "", query_json="[4]")) == [4]


_EVERY_VALUE = "every value must be a number in [0, 1]"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: as_features([PIXELS, PIXELS, [0.5] * 3]),
            "data.ndarray rows have unequal lengths: row 0 has 784 values, row 2 has 3; "
            "every row must have 784",
        ),
        (
            lambda: as_features([0.5] * 10),
            "data.ndarray must be a 2-D batch [[784 numbers], ...]; got 1 dimension(s), shape [10]",
        ),
        (
            lambda: as_features([[1.0] * 783 + [2.0]]),
            f"{_RANGE}1 of 784 are outside, e.g. row 0, column 783 is 2 "
            f"(values range from 1 to 2).{_RAW_PIXELS}",
        ),
        (
            lambda: from_flat(PIXELS, ["x" * 36], field="t"),
            f"t shape must be a list of whole numbers, e.g. [1, 784]; got ['{'x' * 36}']",
        ),
        (
            lambda: as_features([[0.5] * 5 + [None] + [0.5] * 778]),
            f"data.ndarray[0][5] is null: {_EVERY_VALUE}",
        ),
        (
            lambda: as_features("abc"),
            "data.ndarray must be a list of rows [[784 numbers], ...]; got a string ('abc')",
        ),
        (
            lambda: from_flat([True, *PIXELS[1:]], [1, 784], field="t"),
            f"t[0] is true (a boolean): {_EVERY_VALUE}",
        ),
    ],
    ids=[
        "third-row-short",
        "flat-but-not-784",
        "ones-are-inside",
        "shape-40-chars-whole",
        "null-after-numbers",
        "a-string-for-rows",
        "flat-boolean-by-default",
    ],
)
def test_features_messages_point_at_the_value_at_fault(call: _Call, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        call()
    assert caught.value.message == message
