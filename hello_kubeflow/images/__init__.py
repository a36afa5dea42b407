"""The project image (Docker SDK): plan, build, push, digest record, local containers."""

from __future__ import annotations

from hello_kubeflow.images.engine import connect
from hello_kubeflow.images.plan import default_tag, plan_build
from hello_kubeflow.images.publish import BuildPushResult, build_push
from hello_kubeflow.images.push import push_image
from hello_kubeflow.images.record import pipeline_image

__all__ = [
    "BuildPushResult",
    "build_push",
    "connect",
    "default_tag",
    "pipeline_image",
    "plan_build",
    "push_image",
]
