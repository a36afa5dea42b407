"""The MNIST training pipeline, as the KFP samples keep it: one file to compile.

    kfp dsl compile --py pipeline/train_pipeline.py --output job.yaml

The definition lives in the package (`hello_kubeflow.pipeline.definition`);
this file only names it. Importing it does no work: `train_pipeline` is built
when it is first asked for (by `kfp dsl compile`, which looks the module's
names up, or by `python pipeline/train_pipeline.py`), in the image the
settings name (the pushed image by digest once `inv build-push` has run).
"""

from typing import Any

from hello_kubeflow.pipeline.definition import PIPELINE_NAME, make_pipeline  # noqa: F401


def __getattr__(name: str) -> Any:
    """Build `train_pipeline` on first use (PEP 562), not at import."""
    if name == "train_pipeline":
        from hello_kubeflow.pipeline.definition import default_pipeline

        return default_pipeline()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "train_pipeline"])


if __name__ == "__main__":
    from kfp import compiler

    compiler.Compiler().compile(__getattr__("train_pipeline"), "job.yaml")
