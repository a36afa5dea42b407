"""Validate a custom resource against its CRD's `openAPIV3Schema`, as the API server does.

What is checked follows the Kubernetes docs, "Extend the Kubernetes API with
CustomResourceDefinitions" (sections "Validation", "Field pruning",
"IntOrString", "RawExtension", "Defaulting and Nullable") and "Server-Side
Apply" / API concepts "Field validation": types, `required`, `enum`,
`pattern`, bounds, `nullable`, `x-kubernetes-int-or-string`,
`x-kubernetes-preserve-unknown-fields`, `x-kubernetes-embedded-resource`,
and `anyOf`/`allOf`/`oneOf`/`not`. A field the schema does not declare is an
unknown field: a strict request (`fieldValidation=Strict`, which server-side
apply from kubectl and from `inv setup` sends) is refused with
`.spec.x: field not declared in schema`. CEL rules (`x-kubernetes-validations`)
are not evaluated: that needs a CEL interpreter.

Also reads the CRDs shipped in `../shared/upstream` (the real schemas). `UPSTREAM`
is the one place the tests and scripts find that folder: `HK_TEST_UPSTREAM_DIR`,
else `../shared/upstream` beside the checkout; `upstream_file` skips a test when
a file is not there, so a clone without the folder skips instead of failing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = Path(os.environ.get("HK_TEST_UPSTREAM_DIR", REPO.parent / "shared" / "upstream"))
"""The rendered upstream manifests (CI has them beside the clone, at ../shared/upstream)."""
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}
_METADATA = frozenset(
    {
        "name",
        "namespace",
        "labels",
        "annotations",
        "generateName",
        "finalizers",
        "ownerReferences",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)


def upstream_file(relative: str) -> Path:
    """The upstream file at `relative` (e.g. `kserve-v0.20.0/kserve.yaml`); skip when absent."""
    path = UPSTREAM / relative
    if not path.is_file():
        pytest.skip(
            f"upstream's rendered manifests are not at {UPSTREAM} (no {relative}; "
            "set HK_TEST_UPSTREAM_DIR, see ../shared/upstream/README.md)"
        )
    return path


def upstream_documents(*relative: str) -> Iterator[dict[str, Any]]:
    """Every object of the upstream files named (all of them when none is)."""
    paths = [upstream_file(r) for r in relative] if relative else sorted(UPSTREAM.glob("*/*.yaml"))
    for path in paths:
        for doc in yaml.load_all(
            path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        ):
            if doc:
                yield doc


def upstream_crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, from every CRD in the upstream files."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in upstream_documents():
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        schemas.update(crd_schemas(doc))
    return schemas


def crd_schemas(crd: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for each served version of one CRD."""
    spec = crd["spec"]
    found = {}
    for version in spec.get("versions") or []:
        if version.get("served", True):
            schema = (version.get("schema") or {}).get("openAPIV3Schema") or {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            }
            found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return found


def validate(obj: Any, schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Check `obj` against a CRD schema.

    Returns:
        (invalid, unknown): `field: problem` lines (422 Invalid), and the paths of
        fields the schema does not declare (refused under fieldValidation=Strict).
    """
    invalid: list[str] = []
    unknown: list[str] = []
    _check(obj, schema, "", invalid, unknown, root=True)
    return invalid, unknown


def _check(
    value: Any,
    schema: dict[str, Any],
    path: str,
    invalid: list[str],
    unknown: list[str],
    *,
    root: bool = False,
) -> None:
    where = path or "<root>"
    if value is None:
        if not schema.get("nullable"):
            invalid.append(f"{where}: Invalid value: null")
        return
    for sub in schema.get("allOf") or []:
        _check(value, sub, path, invalid, [], root=root)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            passing = sum(1 for sub in options if not _errors(value, sub))
            if passing == 0 or (key == "oneOf" and passing > 1):
                invalid.append(f"{where}: Invalid value: does not match {key}")
    if "not" in schema and not _errors(value, schema["not"]):
        invalid.append(f"{where}: Invalid value: must not match the 'not' schema")
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            invalid.append(f"{where}: Invalid value: must be an integer or a string")
        return
    kind = schema.get("type")
    if kind and not _is_type(value, kind):
        invalid.append(f"{where}: Invalid value: {_type_name(value)}: must be of type {kind}")
        return
    if "enum" in schema and value not in schema["enum"]:
        shown = ", ".join(repr(v) for v in schema["enum"])
        invalid.append(f"{where}: Unsupported value: {value!r}: supported values: {shown}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            invalid.append(f"{where}: Invalid value: {value!r}: must match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)):
            invalid.append(f"{where}: Too long: may not be longer than {schema['maxLength']}")
        if len(value) < schema.get("minLength", 0):
            invalid.append(f"{where}: Invalid value: shorter than {schema['minLength']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            invalid.append(f"{where}: Invalid value: {value}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            invalid.append(f"{where}: Invalid value: {value}: must be <= {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            invalid.append(f"{where}: Required value: at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            invalid.append(f"{where}: Too many: must have at most {schema['maxItems']} items")
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _check(item, items, f"{path}[{index}]", invalid, unknown)
    if isinstance(value, dict):
        _check_object(value, schema, path, invalid, unknown, root=root)


def _check_object(
    value: dict[str, Any],
    schema: dict[str, Any],
    path: str,
    invalid: list[str],
    unknown: list[str],
    *,
    root: bool,
) -> None:
    properties: dict[str, Any] = dict(schema.get("properties") or {})
    for name in schema.get("required") or []:
        if name not in value:
            invalid.append(f"{path}.{name}: Required value".lstrip("."))
    embedded = root or schema.get("x-kubernetes-embedded-resource")
    if embedded:  # apiVersion, kind and metadata are the API server's own (ObjectMeta)
        for name in ("apiVersion", "kind"):
            properties.setdefault(name, {"type": "string"})
        for name in set(value.get("metadata") or {}) - _METADATA:
            unknown.append(f"{path}.metadata.{name}".lstrip("."))
        properties["metadata"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    extra = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    for name, item in value.items():
        child = f"{path}.{name}" if path else name
        if name in properties:
            _check(item, properties[name], child, invalid, unknown)
        elif isinstance(extra, dict):
            _check(item, extra, child, invalid, unknown)
        elif extra is True or preserve:
            continue
        else:
            unknown.append(child)


def _errors(value: Any, schema: dict[str, Any]) -> list[str]:
    invalid: list[str] = []
    _check(value, schema, "", invalid, [])
    return invalid


def _is_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, (object,)))


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
