"""`MnistClassifier`: the model as a Seldon Python-wrapper class (numpy and the runtime, no web)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from hello_kubeflow.errors import ModelError
from hello_kubeflow.serving.describe import ModelCard
from hello_kubeflow.serving.features import (
    N_CLASSES,
    N_FEATURES,
    BadInput,
    as_features,
    check_names,
)


def _bad_request(message: str) -> Exception:
    """The wrapper's 400 exception when running under it, else our own `BadInput`."""
    try:
        from seldon_core.flask_utils import SeldonMicroserviceException
    except ImportError:
        return BadInput(message)
    return cast(Exception, SeldonMicroserviceException(message, status_code=400))


class MnistClassifier:
    """The MNIST model behind the Seldon wrapper's interface (`model_dir` "" is `HK_MODEL_DIR`).

    Raises:
        ModelError: no model directory was given or set, or it holds no valid model.
    """

    def __init__(self, model_dir: str = "", model_name: str = "") -> None:
        from hello_kubeflow.model.train import load_model
        from hello_kubeflow.settings import load_settings

        settings = load_settings()
        directory = Path(model_dir) if model_dir else settings.model_dir
        if directory is None:
            raise ModelError(
                "MnistClassifier needs a model directory: pass the model_dir parameter "
                '(--parameters \'[{"name": "model_dir", "value": "/models/mnist", '
                '"type": "STRING"}]\') or set HK_MODEL_DIR'
            )
        self._model = load_model(directory)
        self._card = ModelCard.of(self._model, model_name or settings.model_name)
        self._class_names = list(self._card.class_names)

    def class_names(self) -> list[str]:
        """The ten class names the wrapper puts in answers: `class:0` ... `class:9`."""
        return self._class_names

    def predict(
        self, X: Any, features_names: Iterable[str] | None = None, **kwargs: Any
    ) -> npt.NDArray[np.float32]:
        """Ten class probabilities per image, float32 (n, 10) in `class_names()` order.

        Args:
            X: (n, 784) pixels in [0, 1]: a numpy array, or a `jsonData` request's rows.
            features_names: none, or 784 of them (pixels are positional).
            **kwargs: what newer wrappers pass (`meta`), unused.

        Raises:
            SeldonMicroserviceException: (`BadInput` outside the wrapper) for bad input.
        """
        try:
            features = as_features(X, field="data")
            check_names(_as_list(features_names))
        except BadInput as exc:
            raise _bad_request(exc.message) from None
        return np.asarray(self._model.predict_proba(features), dtype=np.float32)

    def init_metadata(self) -> dict[str, Any]:
        """The model's metadata for the wrapper's `/metadata` (same as our server's)."""
        return self._card.seldon_metadata()

    def health_status(self) -> str:
        """A real prediction on a blank image; ModelError unless it gives ten probabilities."""
        answer = np.asarray(self._model.predict_proba(np.zeros((1, N_FEATURES), np.float32)))
        if answer.shape != (1, N_CLASSES):
            raise ModelError(f"the model answered shape {answer.shape} for one image")
        return "healthy"


def _as_list(names: Any) -> Any:
    """The wrapper's feature names as a list (a proto's repeated field is not one)."""
    if names is None or isinstance(names, list | str | dict):
        return names
    try:
        return list(names)
    except TypeError:
        return names
