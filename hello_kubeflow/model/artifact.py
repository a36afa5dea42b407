"""The model artifact: `model.joblib` (scikit-learn), `model.onnx`, `metadata.json` (with SHA-256s).

`load_model` checks all of it and answers through ONNX Runtime when it can.
"""

from __future__ import annotations

import json
import logging
import platform
import threading
from collections.abc import Mapping
from importlib import metadata as dist_metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hello_kubeflow.data.files import file_record
from hello_kubeflow.errors import ModelError
from hello_kubeflow.model import LATEST_FILE
from hello_kubeflow.model.fastpath import (
    N_FEATURES,
    ONNX_INPUT,
    ONNX_PROBABILITIES,
    as_probabilities,
    open_session,
)

log = logging.getLogger(__name__)

N_CLASSES = 10
CLASS_NAMES: tuple[str, ...] = tuple(f"class:{d}" for d in range(N_CLASSES))
MODEL_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
FORMAT = "hello-kubeflow-model"
FORMAT_VERSION = 1
MODEL_KINDS = ("forest", "mlp")
# The libraries whose version changes what a saved model answers (kfp only runs steps).
SERVING_LIBRARIES = ("scikit-learn", "numpy", "joblib", "onnx", "onnxruntime")
_FIX = "run `inv train` to make a model, or point --model at a model directory"


class LoadedModel:
    """A model artifact (`directory`, its `metadata`) answering through ONNX Runtime or sklearn."""

    def __init__(self, directory: Path, metadata: dict[str, Any], session: Any = None) -> None:
        self.directory = directory
        self.metadata = metadata
        self.class_names: list[str] = list(CLASS_NAMES)
        self._session = session
        self._sklearn: Any = None
        self._lock = threading.Lock()

    @property
    def fast(self) -> bool:
        """True when `predict_proba` runs through ONNX Runtime."""
        return self._session is not None

    @property
    def kind(self) -> str:
        """Which model this is: `forest` or `mlp` (`metadata.json`'s `model`)."""
        return model_kind(self.metadata)

    @property
    def runtime(self) -> str:
        """What computes `predict_proba`: `onnxruntime` or `sklearn`."""
        return "onnxruntime" if self.fast else "sklearn"

    @property
    def sklearn_model(self) -> Any:
        """The scikit-learn model, loaded from `model.joblib` on first use."""
        with self._lock:
            if self._sklearn is None:
                self._sklearn = _load_sklearn(self.directory / MODEL_FILE, self.kind)
            return self._sklearn

    def predict_proba(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """float32 (n, 10) probabilities (rows sum to 1) for pixels in [0, 1] shaped (n, 784).

        Through the fast path when there is one; columns in `class_names` order.

        Raises:
            ValueError: `x` is not shaped (n, 784).
        """
        features = _features(x)
        if self._session is None:
            return self.sklearn_predict_proba(features).astype(np.float32)
        result = self._session.run([ONNX_PROBABILITIES], {ONNX_INPUT: features})[0]
        return as_probabilities(np.asarray(result, dtype=np.float32))

    def sklearn_predict_proba(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """float64 (n, 10) probabilities from scikit-learn itself (the reference for parity)."""
        proba: npt.NDArray[np.float64] = self.sklearn_model.predict_proba(_features(x))
        return proba

    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The most likely digit for each image (argmax of `predict_proba`)."""
        digits: npt.NDArray[np.int64] = self.predict_proba(x).argmax(axis=1).astype(np.int64)
        return digits


def load_model(directory: Path | str, *, threads: int = 1) -> LoadedModel:
    """Load and check a model artifact; open its fast form when possible.

    Checks `metadata.json` and each file's SHA-256; the scikit-learn model is read
    only when first needed, so a server starts in about a second. `directory` may
    be a file in it; `threads`: ONNX Runtime threads per call.

    Raises:
        ModelError: the directory or a file is missing, corrupt or not our model.
    """
    path = Path(directory).expanduser()
    if path.is_file() and (path.parent / METADATA_FILE).is_file():
        path = path.parent
    if not path.is_dir():
        raise ModelError(f"no model directory at {path}: {_FIX}")
    metadata = _read_metadata(path / METADATA_FILE)
    if model_kind(metadata) not in MODEL_KINDS:
        raise ModelError(
            f"{path / METADATA_FILE} says the model is {metadata.get('model')!r}; this code "
            f"serves {' and '.join(MODEL_KINDS)}: retrain it with `inv train`"
        )
    files = metadata["files"]
    if MODEL_FILE not in files:
        raise ModelError(f"{path / METADATA_FILE} lists no {MODEL_FILE}: {_FIX}")
    for name in (MODEL_FILE, ONNX_FILE):
        if name in files:
            _verify_file(path / name, files[name])
    session = open_session(path / ONNX_FILE, threads, fix=_FIX) if ONNX_FILE in files else None
    drift = version_drift(metadata)
    if drift:
        log.warning(
            "%s was trained with other library versions than it is served with (%s): its "
            "answers may differ; retrain it here (inv train) or serve it from the image it "
            "was trained in",
            path,
            "; ".join(drift),
        )
    model = LoadedModel(path, metadata, session)
    if session is None:
        log.info("no fast path for %s: answering through scikit-learn", path)
        model.sklearn_model  # noqa: B018 - read the model now: it is the only path
    return model


def model_kind(metadata: Mapping[str, Any]) -> str:
    """The kind of model a `metadata.json` describes (`forest` when it does not say)."""
    return str(metadata.get("model", "forest"))


def kind_of(model: Any) -> str | None:
    """`forest` or `mlp` for a fitted classifier of 784 pixels into the digits 0-9, else None."""
    classes = getattr(model, "classes_", None)
    if (
        getattr(model, "n_features_in_", None) != N_FEATURES
        or classes is None
        or list(classes) != list(range(N_CLASSES))  # labels "0".."9" are not digits
    ):
        return None
    if hasattr(model, "estimators_"):
        return "forest"
    if hasattr(model, "coefs_") and getattr(model, "out_activation_", None) == "softmax":
        return "mlp"
    return None


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that make and read a model artifact."""
    versions = {"python": platform.python_version()}
    for dist in (*SERVING_LIBRARIES, "kfp"):
        try:
            versions[dist] = dist_metadata.version(dist)
        except dist_metadata.PackageNotFoundError:
            continue
    return versions


def version_drift(metadata: Mapping[str, Any]) -> list[str]:
    """`name trained -> served` for each serving library whose version differs (both known)."""
    trained = metadata.get("versions")
    if not isinstance(trained, Mapping):
        return []
    served = library_versions()
    return [
        f"{name} {trained[name]} -> {served[name]}"
        for name in SERVING_LIBRARIES
        if name in trained and name in served and str(trained[name]) != served[name]
    ]


def _read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"{path} is missing, so {path.parent} is not a model directory: {_FIX}")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not readable JSON ({exc}): {_FIX}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelError(f"{path} is not the metadata of a hello-kubeflow model: {_FIX}")
    if metadata.get("format_version") != FORMAT_VERSION or not isinstance(
        metadata.get("files"), dict
    ):
        raise ModelError(
            f"{path} is format version {metadata.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}: retrain with `inv train`"
        )
    return metadata


def _verify_file(path: Path, record: Mapping[str, Any]) -> None:
    if not path.is_file():
        raise ModelError(f"{path} is missing from the model directory: {_FIX}")
    if file_record(path) != dict(record):
        raise ModelError(
            f"{path} does not match the SHA-256 in {METADATA_FILE}: the file is corrupt or "
            f"was replaced; {_FIX}"
        )


def _load_sklearn(path: Path, kind: str) -> Any:
    import joblib  # joblib (0.26 s): a model without its ONNX form only

    # A scikit-learn version other than the training one was warned about at load_model.
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling raises anything: EOFError, KeyError, zlib.error...
        raise ModelError(f"{path} is not a model joblib can load ({exc!r}): {_FIX}") from None
    found = kind_of(model)
    if found is None:
        raise ModelError(f"{path} is not an MNIST classifier (784 pixels, 10 digits): {_FIX}")
    if found != kind:
        raise ModelError(
            f"{path} holds a {found} but {METADATA_FILE} says {kind}: the directory is mixed "
            f"up; {_FIX}"
        )
    return model


def _features(x: npt.ArrayLike) -> npt.NDArray[np.float32]:
    features = np.ascontiguousarray(x, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != N_FEATURES:
        raise ValueError(f"expected pixels shaped (n, {N_FEATURES}), got {features.shape}")
    return features


def latest_model_path(output_dir: Path) -> Path:
    """The model directory the last `inv train` produced (recorded in `output_dir`).

    Raises:
        ModelError: when no run has produced a model yet, or it was deleted.
    """
    record = output_dir / LATEST_FILE
    try:
        path = Path(json.loads(record.read_text())["model_path"])
    except FileNotFoundError:
        raise ModelError(
            f"no trained model yet ({record} is missing): run `inv train` first, "
            "or give a model directory with --model"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{record} is damaged ({exc}): run `inv train` again") from None
    if not path.is_dir():
        raise ModelError(f"the last trained model ({path}) is gone: run `inv train` again")
    return path
