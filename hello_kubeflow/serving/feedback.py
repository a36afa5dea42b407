"""Seldon feedback: validated as the wrapper's proto parsing does, and counted.

As the Seldon Core 1.17.1 wrapper (SeldonIO/seldon-core, tag v1.17.1, `python/seldon_core/`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from hello_kubeflow.serving.features import BadInput, shorten
from hello_kubeflow.serving.protocol import check_meta

# The fields of the protos a feedback message is parsed into, in the wrapper's
# proto/prediction.proto: Feedback, SeldonMessage, DefaultData, Meta.
_FEEDBACK_FIELDS = frozenset({"request", "response", "reward", "truth"})
_MESSAGE_FIELDS = frozenset(
    {"status", "meta", "data", "binData", "strData", "jsonData", "customData"}
)
_DATA_FIELDS = frozenset({"names", "tensor", "ndarray", "tftensor"})
_META_FIELDS = frozenset({"puid", "tags", "routing", "requestPath", "metrics"})


@dataclass(frozen=True, slots=True)
class Feedback:
    """A valid Seldon feedback message: its `reward` (0 when absent) and what the answer echoes.

    `kind` is `ndarray` if the feedback's request was one, else `tensor`; `puid` is the request's.
    """

    reward: float = 0.0
    kind: str = "tensor"
    puid: str | None = None


def parse_feedback(message: Any) -> Feedback:
    """Validate a Seldon feedback message as the wrapper's `Feedback` proto parsing does.

    As utils.py `json_to_feedback`, unknown fields down to `data` and `meta` are refused;
    the reward must be a finite JSON number (the proto parser takes "NaN" and `true`).

    Raises:
        BadInput: naming the field that is wrong.
    """
    if not isinstance(message, dict):
        raise BadInput(
            'a feedback message must be a JSON object like {"request": {...}, '
            '"response": {...}, "reward": 1.0, "truth": {...}}'
        )
    _known_fields(message, _FEEDBACK_FIELDS, "the feedback message")
    for name in ("request", "response", "truth"):
        _check_feedback_part(message.get(name), f"feedback {name}")
    # Checked above: the request, its data and meta are objects or absent; a puid is a string.
    request = message.get("request") or {}
    return Feedback(
        reward=_reward(message.get("reward")),
        kind="ndarray" if "ndarray" in (request.get("data") or {}) else "tensor",
        puid=(request.get("meta") or {}).get("puid") or None,
    )


def _known_fields(part: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(part) - allowed)
    if unknown:
        raise BadInput(
            f"{where} has unknown field(s) {shorten(', '.join(unknown))}; its fields are "
            f"{', '.join(sorted(allowed))}"
        )


def _check_feedback_part(part: Any, where: str) -> None:
    if part is None:
        return
    if not isinstance(part, dict):
        raise BadInput(f"{where} must be a Seldon message (a JSON object)")
    _known_fields(part, _MESSAGE_FIELDS, where)
    for name, allowed in (("data", _DATA_FIELDS), ("meta", _META_FIELDS)):
        inner = part.get(name)
        if inner is None:
            continue
        if not isinstance(inner, dict):
            raise BadInput(f"{where}.{name} must be a JSON object")
        _known_fields(inner, allowed, f"{where}.{name}")
    if isinstance(part.get("meta"), dict):
        check_meta(part["meta"], f"{where}.meta")  # its proto parser types them, as there
    data = part.get("data") or {}
    if "ndarray" in data and not isinstance(data["ndarray"], list):
        raise BadInput(f"{where}.data.ndarray must be a list")


def _reward(reward: Any) -> float:
    if reward is None:
        return 0.0
    if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
        raise BadInput(f"feedback reward must be a finite number; got {shorten(repr(reward))}")
    return float(reward)


class FeedbackCounter:
    """Feedback `received`, and `rewarded` and `reward` as the wrapper counts them (thread-safe).

    Only a non-zero reward counts there (metrics.py, `SeldonMetrics.update_reward`).
    """

    def __init__(self) -> None:
        self.received = 0
        self.rewarded = 0
        self.reward = 0.0
        self._lock = threading.Lock()

    def add(self, reward: float) -> None:
        """Count one feedback message carrying `reward`."""
        with self._lock:
            self.received += 1
            if reward:
                self.rewarded += 1
                self.reward += reward

    def prometheus(self) -> bytes:
        """The counters in Prometheus' text format, under the wrapper's metric names."""
        with self._lock:
            lines = [
                "# TYPE seldon_api_model_feedback counter",
                f'seldon_api_model_feedback_total{{method="feedback"}} {self.rewarded}',
                "# TYPE seldon_api_model_feedback_reward counter",
                f'seldon_api_model_feedback_reward_total{{method="feedback"}} {self.reward!r}',
                "# TYPE hello_kubeflow_feedback_received counter",
                f"hello_kubeflow_feedback_received_total {self.received}",
            ]
        return ("\n".join(lines) + "\n").encode()
