"""The fast form of the forest: one ONNX `TreeEnsembleClassifier`, run by ONNX Runtime.

For one image ONNX Runtime answers in ~0.05-0.1 ms where scikit-learn's
`predict_proba` takes 2-9 ms, mostly per-call overhead; the probabilities agree
to 1e-6 (tests/test_model_train.py checks all 10,000 test images of every preset;
figures in docs/benchmarks.md). ONNX Runtime adds the trees' leaf weights in
float32, so a row can sum to 1.0000004; `as_probabilities` divides each row by
its sum, which makes every answer a valid probability again.
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
    """Write a fitted `RandomForestClassifier` as a serialised ONNX model.

    The graph is the one skl2onnx makes (a single `TreeEnsembleClassifier`,
    input `input` float32 (n, 784), outputs `label` and `probabilities`, no
    ZipMap), built from the trees' arrays with numpy instead of a Python loop
    per node or per value: ~1.5 s for a million nodes where skl2onnx took ~17 s,
    and 0.3 s (was 0.5 s) for the book preset's 200k nodes (docs/benchmarks.md).
    Leaf weights that are zero are left out (ONNX Runtime adds nothing for a
    class a leaf does not list), which makes the file ~3x smaller.

    Args:
        forest: a fitted scikit-learn `RandomForestClassifier` on 784 features.

    Returns:
        The ONNX model's bytes.
    """
    from onnx import TensorProto, helper  # onnx (1.1 s): the export only, not the server

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
    ensemble = helper.make_node(
        "TreeEnsembleClassifier",
        [ONNX_INPUT],
        ["label", ONNX_PROBABILITIES],
        domain="ai.onnx.ml",
        post_transform="NONE",
    )
    arrays = {
        "classlabels_int64s": np.asarray(forest.classes_, np.int64),
        "nodes_treeids": cat["tree"],
        "nodes_nodeids": cat["id"],
        "nodes_featureids": cat["feature"],
        "nodes_values": cat["value"].astype(np.float32),
        "nodes_modes": np.where(cat["leaf"], b"LEAF", b"BRANCH_LEQ"),
        "nodes_truenodeids": cat["true"],
        "nodes_falsenodeids": cat["false"],
        "class_treeids": weights["tree"],
        "class_nodeids": weights["id"],
        "class_ids": weights["class"],
        "class_weights": weights["weight"].astype(np.float32),
    }
    for name, values in arrays.items():
        _add_list_attribute(ensemble, name, values)
    # In name order, as `make_node` writes keyword attributes: the same bytes as before.
    ensemble.attribute.sort(key=lambda attribute: attribute.name)
    graph = helper.make_graph(
        [ensemble],
        "mnist-random-forest",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, [None, N_FEATURES])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info(
                ONNX_PROBABILITIES, TensorProto.FLOAT, [None, len(forest.classes_)]
            ),
        ],
    )
    opsets = [helper.make_opsetid(domain, version) for domain, version in _ONNX_OPSETS.items()]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="hello-kubeflow")
    model.ir_version = 8  # readable by every ONNX Runtime since 1.10
    data: bytes = model.SerializeToString()
    return data


def _add_list_attribute(node: Any, name: str, values: npt.NDArray[Any]) -> None:
    """Add a list attribute to an ONNX node straight from an array.

    `onnx.helper.make_attribute` checks the type of every value in Python, which
    took most of the conversion (0.4 s of 0.7 s for the book preset's 200k nodes);
    the array's dtype already says what every value is.
    """
    from onnx import AttributeProto  # onnx (1.1 s): the export only, not the server

    attribute = node.attribute.add()
    attribute.name = name
    if values.dtype.kind == "f":
        attribute.type = AttributeProto.FLOATS
        attribute.floats.extend(values.tolist())
    elif values.dtype.kind == "S":
        attribute.type = AttributeProto.STRINGS
        attribute.strings.extend(values.tolist())
    else:
        attribute.type = AttributeProto.INTS
        attribute.ints.extend(values.astype(np.int64).tolist())


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
    """Rows of summed leaf weights as probabilities: each value in [0, 1], rows summing to 1.

    Thirty float32 weights of 1/30 add up to 1.0000004 (the `book` preset), which
    is not a probability. Dividing a row by its own sum cannot give more than 1
    (no value exceeds the sum of non-negative values, and the rounded quotient of
    x / s with x <= s is at most 1), and moves each value by a few float32 ulps,
    far inside the 1e-5 agreement with scikit-learn.

    Args:
        summed: (n, 10) non-negative sums of leaf weights, as ONNX Runtime answers.

    Returns:
        The same array, divided row by row by its sums (in place).
    """
    totals = summed.sum(axis=1, keepdims=True)
    np.maximum(totals, np.finfo(np.float32).tiny, out=totals)  # a row of zeros stays zeros
    summed /= totals
    return summed


def open_session(path: Path, threads: int = 1, *, fix: str = "") -> Any:
    """Open `model.onnx` in ONNX Runtime, sequential, `threads` threads per call.

    Args:
        path: the ONNX file.
        threads: intra-op threads; 1 suits one-image requests (no thread hand-off).
        fix: what to tell the user when the file is not a model.

    Returns:
        The `InferenceSession`, or None when onnxruntime is not installed.

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
