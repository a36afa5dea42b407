"""The project image: build it, push it, record its digest, run it (Docker SDK).

plan.py      what a build will do (registry, name, tag, labels), validated first
lock.py      requirements.lock (exact versions) and the labels that record it
engine.py    the Docker engine connection (DockerUnavailableError)
build.py     the build, streamed live (BuildError quotes the failing step)
push.py      the push, every stream chunk checked, bounded retries
record.py    `<output_dir>/image.json` and `pipeline_image(settings)`
publish.py   `build_push(settings, ...)`: what `inv build-push` calls
lifecycle.py a local container's life: pull, start, wait until it answers, stop
container.py the model server in the image (`inv serve --container`)
"""

from __future__ import annotations

from hello_kubeflow.images.engine import connect, engine_reachable
from hello_kubeflow.images.plan import BuildPlan, default_tag, plan_build
from hello_kubeflow.images.publish import BuildPushResult, build_push
from hello_kubeflow.images.push import push_image
from hello_kubeflow.images.record import ImageRecord, pipeline_image, read_record

__all__ = [
    "BuildPlan",
    "BuildPushResult",
    "ImageRecord",
    "build_push",
    "connect",
    "default_tag",
    "engine_reachable",
    "pipeline_image",
    "plan_build",
    "push_image",
    "read_record",
]
