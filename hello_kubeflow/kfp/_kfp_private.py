"""The project's one reach into kfp's private parts, checked: kfp pins `<2.18` in pyproject.toml.

`kfp.Client` has no public call to create a pipeline without a version (its
`upload_pipeline` names the first version after the pipeline); it keeps the
generated `PipelineServiceApi` that does, as `_pipelines_api` (kubeflow/pipelines
2.17.0, sdk/python/kfp/client/client.py, `Client.__init__`).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from hello_kubeflow.errors import KfpError


def pipeline_service(client: Any) -> Any:
    """The client's `kfp_server_api.PipelineServiceApi`.

    Raises:
        KfpError: the installed kfp keeps it elsewhere (naming the version and the attribute).
    """
    service = getattr(client, "_pipelines_api", None)
    if not callable(getattr(service, "pipeline_service_create_pipeline", None)):
        raise KfpError(
            f"kfp {metadata.version('kfp')} has no kfp.Client._pipelines_api."
            "pipeline_service_create_pipeline, which kfp 2.17 has and this project uses to "
            "create a pipeline: install kfp>=2.17,<2.18 as pyproject.toml asks"
        )
    return service
