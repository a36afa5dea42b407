"""kfp's private parts the project uses, checked (pyproject.toml pins kfp `<2.18`).

`kfp.Client` has no public call to create a pipeline without a version; its generated
`PipelineServiceApi` does, kept as `_pipelines_api` (kubeflow/pipelines 2.17.0,
sdk/python/kfp/client/client.py, `Client.__init__`).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from hello_kubeflow.errors import KfpError


def pipeline_service(client: Any) -> Any:
    """The client's `PipelineServiceApi`; KfpError naming kfp's version if it moved."""
    service = getattr(client, "_pipelines_api", None)
    if not callable(getattr(service, "pipeline_service_create_pipeline", None)):
        raise KfpError(
            f"kfp {metadata.version('kfp')} has no kfp.Client._pipelines_api."
            "pipeline_service_create_pipeline, which kfp 2.17 has and this project uses to "
            "create a pipeline: install kfp>=2.17,<2.18 as pyproject.toml asks"
        )
    return service
