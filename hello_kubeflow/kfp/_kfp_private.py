"""kfp's private parts the project uses, each checked (pyproject.toml pins kfp `<2.18`).

kubeflow/pipelines 2.17.0, sdk/python/kfp/client/client.py, `Client.__init__`: `kfp.Client`
has no public call to create a pipeline without a version (its generated
`PipelineServiceApi`, kept as `_pipelines_api`, does), and takes no request timeout (its
APIs share one REST client, `_run_api.api_client.rest_client`).
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from hello_kubeflow.errors import KfpError
from hello_kubeflow.http_client import CONNECT_TIMEOUT

REST_CLIENT = "kfp.Client._run_api.api_client.rest_client"


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


def add_default_timeout(client: Any, seconds: float) -> None:
    """Give every request of the generated API client a timeout.

    kfp 2.17's `Client` takes no timeout; its one REST client (shared by all its APIs)
    is the only place to set one: `REST_CLIENT`, private, so pyproject.toml bounds kfp
    below 2.18 and tests/test_kfp_remote.py fails by name if an upgrade moves it.
    """
    try:
        rest = client._run_api.api_client.rest_client
    except AttributeError:
        raise KfpError(
            f"kfp {metadata.version('kfp')} has no {REST_CLIENT}, where the project sets the "
            "request timeout: install the kfp release pyproject.toml names (2.17)"
        ) from None
    plain = rest.request

    @functools.wraps(plain)
    def request(*args: Any, **kwargs: Any) -> Any:
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or (CONNECT_TIMEOUT, seconds)
        return plain(*args, **kwargs)

    rest.request = request
