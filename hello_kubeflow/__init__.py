"""hello-kubeflow: the "Hello Kubeflow" walkthrough as one reliable workflow."""

from __future__ import annotations

__version__ = "0.1.0"
