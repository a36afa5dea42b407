"""The forest's fast form: one ONNX `TreeEnsembleClassifier`, run by ONNX Runtime.

For one image ~0.05-0.1 ms where scikit-learn takes 2-9 ms; the probabilities
agree to 1e-6 (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hello_kubeflow.errors import ModelError

log = logging.getLogger(__name__)

N_FEATURES = 784
ONNX_INPUT = "input"
ONNX_PROBABILITIES = "probabilities"
_ONNX_OPSETS = {"": 17, "ai.onnx.ml": 3}
_NODE_FIELDS = ("tree", "id", "feature", "value", "true", "false", "leaf")


def forest_to_onnx(forest: Any) -> bytes:
    """A fitted `RandomForestClassifier` on 784 features as serialised ONNX bytes.

    skl2onnx's graph (one `TreeEnsembleClassifier`, input `input` (n, 784), outputs
    `label` and `probabilities`, no ZipMap), built with numpy from the trees' arrays:
    ~1.5 s for a million nodes where skl2onnx took ~17 s. Zero leaf weights are left
    out (the file is ~3x smaller). The protobuf is written here, not through `onnx`,
    whose import alone takes ~0.6 s; the bytes are `onnx.helper`'s (tested).
    """
    nodes: dict[str, list[Any]] = {k: [] for k in _NODE_FIELDS}
    leaves: dict[str, list[Any]] = {"tree": [], "id": [], "class": [], "weight": []}
    n_trees = len(forest.estimators_)
    for tree_id, estimator in enumerate(forest.estimators_):
        tree = estimator.tree_
        is_leaf = tree.children_left == -1
        count = tree.node_count
        nodes["tree"].append(np.full(count, tree_id, np.int64))
        nodes["id"].append(np.arange(count, dtype=np.int64))
        nodes["feature"].append(np.where(is_leaf, 0, tree.feature))
        nodes["value"].append(np.where(is_leaf, np.float32(0), _float32_threshold(tree.threshold)))
        nodes["true"].append(np.where(is_leaf, 0, tree.children_left))
        nodes["false"].append(np.where(is_leaf, 0, tree.children_right))
        nodes["leaf"].append(is_leaf)
        value = tree.value[is_leaf, 0, :]
        proba = value / np.maximum(value.sum(axis=1, keepdims=True), np.finfo(float).tiny)
        leaf_rows, classes = np.nonzero(proba)
        leaves["tree"].append(np.full(len(leaf_rows), tree_id, np.int64))
        leaves["id"].append(np.flatnonzero(is_leaf)[leaf_rows])
        leaves["class"].append(classes)
        leaves["weight"].append(proba[leaf_rows, classes] / n_trees)
    cat = {k: np.concatenate(v) for k, v in nodes.items()}
    weights = {k: np.concatenate(v) for k, v in leaves.items()}
    arrays: dict[str, npt.NDArray[Any] | None] = {
        "classlabels_int64s": np.asarray(forest.classes_, np.int64),
        "nodes_treeids": cat["tree"],
        "nodes_nodeids": cat["id"],
        "nodes_featureids": cat["feature"],
        "nodes_values": cat["value"].astype(np.float32),
        "nodes_modes": cat["leaf"],  # True: LEAF, False: BRANCH_LEQ
        "nodes_truenodeids": cat["true"],
        "nodes_falsenodeids": cat["false"],
        "class_treeids": weights["tree"],
        "class_nodeids": weights["id"],
        "class_ids": weights["class"],
        "class_weights": weights["weight"].astype(np.float32),
        "post_transform": None,  # "NONE"
    }
    # In name order, as `onnx.helper.make_node` writes keyword attributes.
    attributes = b"".join(_attribute(name, arrays[name]) for name in sorted(arrays))
    node = (
        _text(1, ONNX_INPUT)
        + _text(2, "label")
        + _text(2, ONNX_PROBABILITIES)
        + _text(4, "TreeEnsembleClassifier")
        + attributes
        + _text(7, "ai.onnx.ml")
    )
    graph = (
        _field(1, node)
        + _text(2, "mnist-random-forest")
        + _field(11, _tensor_info(ONNX_INPUT, _ONNX_FLOAT, [None, N_FEATURES]))
        + _field(12, _tensor_info("label", _ONNX_INT64, [None]))
        + _field(12, _tensor_info(ONNX_PROBABILITIES, _ONNX_FLOAT, [None, len(forest.classes_)]))
    )
    opsets = b"".join(
        _field(8, _text(1, domain) + _key(2, _WIRE_VARINT) + _varint(version))
        for domain, version in _ONNX_OPSETS.items()
    )
    # ModelProto: ir_version 8 (readable by every ONNX Runtime since 1.10), producer, graph.
    return (
        _key(1, _WIRE_VARINT) + _varint(8) + _text(2, "hello-kubeflow") + _field(7, graph) + opsets
    )


# ---- the protobuf encoding of onnx.proto (proto2: repeated numbers are not packed)

_ONNX_FLOAT, _ONNX_INT64 = 1, 7  # TensorProto.DataType
_FLOATS, _INTS, _STRING, _STRINGS = 6, 7, 3, 8  # AttributeProto.AttributeType
_WIRE_VARINT, _WIRE_BYTES, _WIRE_FIXED32 = 0, 2, 5


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # a negative int64 is its two's complement, 10 bytes
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes or an embedded message."""
    return _key(number, _WIRE_BYTES) + _varint(len(payload)) + payload


def _text(number: int, text: str) -> bytes:
    return _field(number, text.encode())


def _tensor_info(name: str, elem_type: int, shape: list[int | None]) -> bytes:
    """A `ValueInfoProto` as `onnx.helper.make_tensor_value_info` makes it."""
    dims = b"".join(
        _field(1, b"" if size is None else _key(1, _WIRE_VARINT) + _varint(size)) for size in shape
    )
    tensor = _key(1, _WIRE_VARINT) + _varint(elem_type) + _field(2, dims)
    return _text(1, name) + _field(2, _field(1, tensor))


def _attribute(name: str, values: npt.NDArray[Any] | None) -> bytes:
    """An `AttributeProto`: the string "NONE" for None, else a list from an array."""
    if values is None:
        kind, payload = _STRING, _text(4, "NONE")
    elif values.dtype == np.bool_:
        modes = {True: _text(9, "LEAF"), False: _text(9, "BRANCH_LEQ")}
        kind, payload = _STRINGS, b"".join(map(modes.__getitem__, values.tolist()))
    elif values.dtype.kind == "f":
        kind, payload = _FLOATS, _repeated_floats(7, values)
    else:
        kind, payload = _INTS, _repeated_varints(8, values)
    return _field(5, _text(1, name) + payload + _key(20, _WIRE_VARINT) + _varint(kind))


def _repeated_floats(number: int, values: npt.NDArray[Any]) -> bytes:
    """One key and four little-endian bytes per value, as proto2 writes `repeated float`."""
    out = np.empty((len(values), 5), np.uint8)
    out[:, 0] = number << 3 | _WIRE_FIXED32
    out[:, 1:] = values.astype("<f4").view(np.uint8).reshape(-1, 4)
    return out.tobytes()


def _repeated_varints(number: int, values: npt.NDArray[Any]) -> bytes:
    """One key and one varint per value, as proto2 writes `repeated int64`, with numpy."""
    unsigned = values.astype(np.int64).view(np.uint64)
    sizes = np.ones(len(unsigned), np.int64)
    for group in range(1, 10):
        sizes += unsigned >= np.uint64(1 << (7 * group))
    width = int(sizes.max(initial=1))
    columns = np.arange(width)
    shifts = (np.uint64(7) * columns).astype(np.uint64)
    groups = (unsigned[:, None] >> shifts) & np.uint64(0x7F)
    groups |= np.where(columns < sizes[:, None] - 1, np.uint64(0x80), np.uint64(0))
    out = np.empty((len(unsigned), width + 1), np.uint8)
    out[:, 0] = number << 3 | _WIRE_VARINT
    out[:, 1:] = groups
    keep = np.ones(out.shape, bool)
    keep[:, 1:] = columns < sizes[:, None]
    return out[keep].tobytes()


def _float32_threshold(threshold: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """The float32 `w` with `x <= w` exactly when `x <= threshold`, for float32 `x`.

    scikit-learn compares float32 pixels with float64 thresholds; ONNX Runtime
    compares in float32. Rounding down to the largest float32 not above the
    threshold keeps every comparison the same (skl2onnx does the same).
    """
    rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def as_probabilities(summed: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """ONNX Runtime's (n, 10) summed leaf weights divided in place by each row's sum.

    Thirty float32 weights of 1/30 add up to 1.0000004 (the `book` preset): not a
    probability. x / s with x <= s rounds to at most 1, and moves each value by a
    few float32 ulps, far inside the 1e-5 agreement with scikit-learn.
    """
    totals = summed.sum(axis=1, keepdims=True)
    np.maximum(totals, np.finfo(np.float32).tiny, out=totals)  # a row of zeros stays zeros
    summed /= totals
    return summed


def open_session(path: Path, threads: int = 1, *, fix: str = "") -> Any:
    """`model.onnx` in a sequential ONNX Runtime session (None: onnxruntime is not installed).

    `threads`: intra-op threads (1 suits one image); `fix`: what to do about a bad file.

    Raises:
        ModelError: the file is not an ONNX model of this project's classifier.
    """
    try:
        import onnxruntime as ort  # optional: without it, scikit-learn answers
    except ImportError:
        log.warning("onnxruntime is not installed: answering through scikit-learn (slower)")
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the session is ours to check
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind11 types, not one base
        raise ModelError(f"{path} is not a model ONNX Runtime can load ({exc}): {fix}") from None
    outputs = {o.name for o in session.get_outputs()}
    inputs = [i.name for i in session.get_inputs()]
    if inputs != [ONNX_INPUT] or ONNX_PROBABILITIES not in outputs:
        raise ModelError(f"{path} is not this project's classifier (inputs {inputs}): {fix}")
    return session
