"""CRD schemas from the upstream manifests in ../shared/upstream, and checking objects on them.

`crd_schema` reads one CRD's `openAPIV3Schema` out of a rendered manifests file
(only the documents that are CRDs are parsed, so the 9 MB Kubeflow example
stays quick). `schema_problems` validates an object as the API server would:
the schema's types and required fields (jsonschema), and every field the
schema does not know, which the API server would silently drop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from crd_schemas import UPSTREAM

KUBEFLOW_EXAMPLE = UPSTREAM / "kubeflow-manifests-26.03" / "example.yaml"


def crd_schema(manifests: Path, name: str, version: str) -> dict[str, Any]:
    """The `openAPIV3Schema` of CRD `name` (e.g. `notebooks.kubeflow.org`) at `version`."""
    if not manifests.is_file():
        pytest.skip(f"upstream manifests not found at {manifests} (HK_TEST_UPSTREAM_DIR)")
    for document in manifests.read_text().split("\n---\n"):
        if "kind: CustomResourceDefinition" not in document or f"name: {name}\n" not in document:
            continue
        crd = yaml.load(document, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if crd.get("kind") != "CustomResourceDefinition" or crd["metadata"]["name"] != name:
            continue
        for each in crd["spec"]["versions"]:
            if each["name"] == version:
                return dict(each["schema"]["openAPIV3Schema"])
    raise AssertionError(f"no CRD {name} version {version} in {manifests}")


def schema_problems(obj: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `obj` breaks `schema`: type or required errors, and unknown fields."""
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(obj)
    ]
    return problems + _unknown_fields(obj, schema, "")


def _unknown_fields(obj: Any, schema: dict[str, Any], where: str) -> list[str]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(obj, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            if properties is not None and key in properties:
                found += _unknown_fields(value, properties[key], f"{where}/{key}")
            elif isinstance(extra, dict):
                found += _unknown_fields(value, extra, f"{where}/{key}")
            elif properties is not None and extra is not True:
                found.append(f"{where}/{key}: not in the schema (the API server drops it)")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            found += _unknown_fields(item, schema["items"], f"{where}/{index}")
    return found
