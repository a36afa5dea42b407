"""Checks on a loaded model that more than one model kind's tests make."""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_fast_path_parity(loaded: Any, x: np.ndarray) -> None:
    """The fast path on `x`: valid probabilities, within 1e-5 of scikit-learn, the same digits."""
    fast = loaded.predict_proba(x)
    reference = loaded.sklearn_predict_proba(x)
    assert fast.min() >= 0.0 and fast.max() <= 1.0
    np.testing.assert_allclose(fast.sum(axis=1, dtype=np.float64), 1.0, atol=1e-6)
    assert np.abs(fast - reference).max() <= 1e-5
    np.testing.assert_array_equal(fast.argmax(axis=1), reference.argmax(axis=1))
