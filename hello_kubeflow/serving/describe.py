"""What the server says about its model: Seldon and Open Inference (V2) metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hello_kubeflow.serving.features import FEATURE_NAMES, N_CLASSES, N_FEATURES

if TYPE_CHECKING:
    from hello_kubeflow.model.artifact import LoadedModel

_CUSTOM_KEYS = (
    "model",
    "preset",
    "accuracy",
    "n_estimators",
    "train_size",
    "created",
    "trained_at",
)


@dataclass(frozen=True)
class ModelCard:
    """Name, version, runtime (`onnxruntime` or `sklearn`), class names and a few metadata facts."""

    name: str
    version: str
    platform: str
    class_names: tuple[str, ...]
    custom: dict[str, str]

    @classmethod
    def of(cls, model: LoadedModel, name: str) -> ModelCard:
        """Describe a loaded model under the name it is served as."""
        metadata = dict(model.metadata)
        return cls(
            name=name,
            version=_version(metadata),
            platform=model.runtime,
            class_names=tuple(model.class_names),
            custom={k: str(metadata[k]) for k in _CUSTOM_KEYS if metadata.get(k) is not None},
        )

    def seldon_metadata(self) -> dict[str, Any]:
        """The Seldon `/api/v1.0/metadata` document (valid against the wrapper's schema)."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": _ndarray(FEATURE_NAMES, N_FEATURES),
            "outputs": _ndarray(self.class_names, N_CLASSES),
            "custom": dict(self.custom),
        }

    def v2_metadata(self) -> dict[str, Any]:
        """The Open Inference Protocol `GET /v2/models/{name}` document."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
            "outputs": [
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [-1, N_CLASSES],
                    "parameters": {"class_names": ",".join(self.class_names)},
                }
            ],
        }


def _ndarray(names: tuple[str, ...], size: int) -> list[dict[str, Any]]:
    """A Seldon metadata tensor: an ndarray of `size` values named `names`."""
    return [{"messagetype": "ndarray", "schema": {"names": list(names), "shape": [size]}}]


def _version(metadata: Mapping[str, Any]) -> str:
    keys = ("version", "model_version", "created", "trained_at", "sha256")
    return next((str(metadata[key]) for key in keys if metadata.get(key)), "1")
