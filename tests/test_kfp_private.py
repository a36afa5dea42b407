"""kfp's private parts the project reaches into are where the adapter expects them."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata

import pytest
from emulators import serving
from kfp_emulator import KfpEmulator

from hello_kubeflow.errors import KfpError
from hello_kubeflow.gateway.endpoints import Auth
from hello_kubeflow.kfp._kfp_private import pipeline_service
from hello_kubeflow.kfp.remote import Patience, connect

FAST = Patience(
    request_timeout=5.0, retry_deadline=3.0, retry_initial_wait=0.01, poll_interval=0.01
)


@pytest.fixture
def url() -> Iterator[str]:
    with serving(KfpEmulator().handler) as base:
        yield base


def test_the_installed_kfp_client_keeps_the_pipeline_service_where_it_is_read(url: str) -> None:
    """Fails on a kfp upgrade that moves `Client._pipelines_api`, naming the version."""
    session = connect(url, Auth(), patience=FAST)

    service = pipeline_service(session.client)

    assert type(service).__name__ == "PipelineServiceApi"


def test_a_kfp_without_it_is_an_error_naming_the_version_and_the_attribute() -> None:
    with pytest.raises(KfpError) as raised:
        pipeline_service(object())

    said = str(raised.value)
    assert f"kfp {metadata.version('kfp')}" in said
    assert "kfp.Client._pipelines_api.pipeline_service_create_pipeline" in said
    assert "kfp>=2.17,<2.18" in said
