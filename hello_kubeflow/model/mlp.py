"""The stronger model: scikit-learn's `MLPClassifier` and its ONNX form.

The best accuracy per second of training on a laptop CPU that adds nothing to the
image (docs/benchmarks.md); ONNX Runtime answers its small graph in microseconds.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from hello_kubeflow.model.fastpath import N_FEATURES, ONNX_INPUT, ONNX_PROBABILITIES

log = logging.getLogger(__name__)

# scikit-learn's hidden activations and the ONNX operator of each.
_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid", "identity": "Identity"}


@dataclass(frozen=True)
class MlpPreset:
    """A named recipe for the neural network (`inv train --model mlp --preset NAME`).

    Attributes:
        hidden: units of each hidden layer.
        alpha: L2 penalty on the weights.
        train_size: images drawn (seeded) from the training set; None: all of them.
    """

    name: str
    hidden: tuple[int, ...]
    epochs: int
    batch_size: int
    alpha: float
    train_size: int | None
    description: str


# Measured on full MNIST, seed 42, one BLAS thread, load average 3-4 on 2 cores:
# 256 units x 20 epochs 98.09% in 27 s; 512 x 12 98.23% in 40 s; 256 x 30 (batch 512)
# 98.12% in 95 s. 512 x 12 keeps a margin over 98.0% (docs/benchmarks.md).
MLP_PRESETS: dict[str, MlpPreset] = {
    "default": MlpPreset(
        "default",
        hidden=(512,),
        epochs=12,
        batch_size=256,
        alpha=1e-3,
        train_size=None,
        description="one hidden layer of 512 units, 12 passes over all 60,000 images (~98.2%)",
    ),
}


def train_mlp(
    features: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    preset: MlpPreset,
    *,
    seed: int,
) -> tuple[Any, float]:
    """Fit an `MLPClassifier`; the network and the wall seconds of the fit.

    `features` are float32 pixels in [0, 1] (float32 halves the memory and time of
    float64); `seed` seeds the weights and the batches. One BLAS thread: a second costs
    more in hand-offs than it gains (docs/benchmarks.md).
    """
    # scikit-learn (2 s): the fit only, not the server
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    network = MLPClassifier(
        hidden_layer_sizes=preset.hidden,
        max_iter=preset.epochs,
        batch_size=preset.batch_size,
        alpha=preset.alpha,
        random_state=seed,
    )
    log.info(
        "training a %s network for %d epochs on %d images (preset %s)",
        "-".join(str(h) for h in (N_FEATURES, *preset.hidden, 10)),
        preset.epochs,
        len(labels),
        preset.name,
    )
    start = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(1):
        # A fixed number of epochs is the recipe; "not converged" is expected.
        warnings.simplefilter("ignore", ConvergenceWarning)
        network.fit(features, labels)
    seconds = time.perf_counter() - start
    # Only fitting uses these, and `fit` makes them afresh: Adam's moment estimates
    # (twice the weights' size) and the random generator, whose pickle names numpy's
    # private module, so numpy 1.x (the Seldon wrapper's venv) could not load the file.
    for fitting_only in ("_optimizer", "_random_state"):
        if hasattr(network, fitting_only):
            delattr(network, fitting_only)
    return network, seconds


def mlp_to_onnx(network: Any) -> bytes:
    """A fitted `MLPClassifier` (784 features, 10 digits) as serialised ONNX bytes.

    Per layer `MatMul` and `Add` (float32 weights, as scikit-learn keeps them), the
    hidden activation between layers, `Softmax` as `probabilities` (n, 10) and its
    `ArgMax` as `label` (the classes are the digits 0-9, so index and digit agree).
    """
    # onnx (1.1 s): the export only, not the server
    from onnx import TensorProto, helper, numpy_helper

    activation = _ACTIVATIONS[network.activation]
    nodes = []
    initializers = []
    current = ONNX_INPUT
    last = len(network.coefs_) - 1
    for layer, (weights, biases) in enumerate(
        zip(network.coefs_, network.intercepts_, strict=True)
    ):
        w_name, b_name = f"W{layer}", f"b{layer}"
        initializers.append(numpy_helper.from_array(np.asarray(weights, np.float32), w_name))
        initializers.append(numpy_helper.from_array(np.asarray(biases, np.float32), b_name))
        nodes.append(helper.make_node("MatMul", [current, w_name], [f"z{layer}"]))
        nodes.append(helper.make_node("Add", [f"z{layer}", b_name], [f"a{layer}"]))
        current = f"a{layer}"
        if layer < last:
            nodes.append(helper.make_node(activation, [current], [f"h{layer}"]))
            current = f"h{layer}"
    nodes.append(helper.make_node("Softmax", [current], [ONNX_PROBABILITIES], axis=1))
    nodes.append(helper.make_node("ArgMax", [ONNX_PROBABILITIES], ["label"], axis=1, keepdims=0))
    n_classes = len(network.classes_)
    graph = helper.make_graph(
        nodes,
        "mnist-mlp",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, [None, N_FEATURES])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info(ONNX_PROBABILITIES, TensorProto.FLOAT, [None, n_classes]),
        ],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="hello-kubeflow")
    model.ir_version = 8  # readable by every ONNX Runtime since 1.10
    data: bytes = model.SerializeToString()
    return data
