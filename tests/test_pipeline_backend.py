"""The compiled pipeline is what the installed KFP backend (2.17.0) accepts.

kubeflow/pipelines 2.17.0, `backend/src/apiserver/template/v2_template.go`:
the API server reads the pipeline document with `protojson.Unmarshal` into
`pipelinespec.PipelineSpec` (unknown fields are an error), requires
`schemaVersion` 2.1.0 (`template.go`: SCHEMA_VERSION_2_1_0), a pipeline name
matching `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
and a root component; a second document is a PlatformSpec. The proto is
`api/v2alpha1/pipeline_spec.proto` at the same tag, published as the
`kfp-pipeline-spec` package of the same version (`api/v2alpha1/python/setup.py`).
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from hello_kubeflow.pipeline.local import compile_pipeline
from hello_kubeflow.settings import Settings

IMAGE = "localhost:5000/hello-kubeflow@sha256:" + "ab" * 32
BACKEND_SCHEMA_VERSION = "2.1.0"
NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_the_sdk_and_the_pipeline_spec_are_the_backends_minor_release() -> None:
    backend = Settings().kfp_version

    assert minor(metadata.version("kfp")) == minor(backend) == "2.17"
    assert minor(metadata.version("kfp-pipeline-spec")) == minor(backend)


@pytest.mark.parametrize("deploy", [False, True])
def test_the_compiled_pipeline_is_accepted_by_the_backends_pipeline_spec(
    tmp_path: Path, deploy: bool
) -> None:
    path = compile_pipeline(Settings(), tmp_path / "job.yaml", IMAGE, deploy=deploy)
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    spec = pipeline_spec_pb2.PipelineSpec()

    json_format.ParseDict(documents[0], spec)  # strict, as protojson.Unmarshal: no unknown field

    assert spec.schema_version == BACKEND_SCHEMA_VERSION
    assert NAME.fullmatch(spec.pipeline_info.name)
    assert spec.root.dag.tasks
    for platform in documents[1:]:
        json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())


def test_a_field_the_backend_does_not_know_is_refused(tmp_path: Path) -> None:
    path = compile_pipeline(Settings(), tmp_path / "job.yaml", IMAGE)
    document = yaml.safe_load(path.read_text())
    document["pipelineInfo"]["displayNam"] = "typo"

    with pytest.raises(json_format.ParseError, match="displayNam"):
        json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
