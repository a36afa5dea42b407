"""The OpenAPI 3 description of every endpoint, served at `/openapi.json`."""

from __future__ import annotations

from typing import Any

from hello_kubeflow import __version__

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_SELDON_ERRORS = {
    "400": _json("SeldonError", "Malformed request: what is wrong and how to fix it"),
    "413": _json("SeldonError", "Request body over the server's limit (HK_MAX_BODY_BYTES)"),
    "415": _json("SeldonError", "multipart/form-data is not supported"),
}
_V2_ERRORS = {
    "400": _json("V2Error", "Malformed request: what is wrong and how to fix it"),
    "404": _json("V2Error", "No model of that name is served here"),
    "413": _json("V2Error", "Request body over the server's limit (HK_MAX_BODY_BYTES)"),
}
_MODEL_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}

_SELDON_PREDICT: dict[str, Any] = {
    "summary": "Predict digit probabilities (Seldon protocol)",
    "tags": ["seldon"],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("SeldonMessage")},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["json"],
                    "properties": {
                        "json": {"type": "string", "description": "a SeldonMessage as JSON"}
                    },
                }
            },
        },
    },
    "responses": {
        "200": _json("SeldonMessage", "One row of ten probabilities per image"),
        **_SELDON_ERRORS,
    },
}


def _get(summary: str, tag: str, schema: str, description: str) -> dict[str, Any]:
    return {
        "get": {"summary": summary, "tags": [tag], "responses": {"200": _json(schema, description)}}
    }


_SCHEMAS: dict[str, Any] = {
    "SeldonMessage": {
        "type": "object",
        "properties": {
            "data": {
                "type": "object",
                "description": (
                    "ndarray: [[784 numbers in [0, 1]], ...]; or tensor: {shape: [n, 784], values}"
                ),
                "properties": {
                    "names": {"type": "array", "items": {"type": "string"}},
                    "ndarray": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "number"}},
                    },
                    "tensor": {
                        "type": "object",
                        "required": ["shape", "values"],
                        "properties": {
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "values": {"type": "array", "items": {"type": "number"}},
                        },
                    },
                },
            },
            "meta": {
                "type": "object",
                "properties": {
                    "puid": {"type": "string"},
                    "tags": {"type": "object"},
                    "routing": {"type": "object"},
                },
            },
        },
        "required": ["data"],
    },
    "SeldonError": {
        "type": "object",
        "properties": {
            "status": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer"},
                    "info": {"type": "string"},
                    "reason": {"type": "string", "example": "MICROSERVICE_BAD_DATA"},
                    "status": {"type": "string", "enum": ["FAILURE"]},
                },
            }
        },
    },
    "SeldonMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
            "custom": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "SeldonStatus": {
        "type": "object",
        "properties": {"strData": {"type": "string"}, "meta": {"type": "object"}},
    },
    "V2Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "example": "FP32"},
            "parameters": {"type": "object"},
            "data": {"type": "array", "items": {}},
        },
    },
    "V2InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("V2Tensor"), "minItems": 1, "maxItems": 1},
            "outputs": {"type": "array", "items": {"type": "object"}},
        },
    },
    "V2InferenceResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("V2Tensor")},
        },
    },
    "V2Error": {"type": "object", "properties": {"error": {"type": "string"}}},
    "V2Metadata": {"type": "object"},
    "V2Status": {"type": "object"},
}


def openapi_document(model_name: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the server (every route `app.create_app` serves).

    Args:
        model_name: the served model's name, given as the example path value.
    """
    model_name_param = {**_MODEL_NAME, "example": model_name}
    paths: dict[str, Any] = {
        "/api/v1.0/predictions": {"post": _SELDON_PREDICT},
        "/api/v0.1/predictions": {"post": _SELDON_PREDICT},
        "/predict": {
            "post": _SELDON_PREDICT,
            "get": {
                "summary": "Predict with the message in the json query argument",
                "tags": ["seldon"],
                "parameters": [
                    {"name": "json", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _json("SeldonMessage", "Probabilities"), **_SELDON_ERRORS},
            },
        },
        "/health/ping": {
            "get": {
                "summary": "Liveness: answers pong",
                "tags": ["seldon"],
                "responses": {"200": {"description": "pong", "content": {"text/plain": {}}}},
            }
        },
        "/health/status": _get(
            "Model health (a real prediction on a blank image)", "seldon", "SeldonStatus", "healthy"
        ),
        "/api/v1.0/metadata": _get(
            "Model metadata (Seldon)", "seldon", "SeldonMetadata", "Metadata"
        ),
        "/metadata": _get(
            "Model metadata (the Seldon wrapper's path)", "seldon", "SeldonMetadata", "Metadata"
        ),
        "/v2": _get("Server metadata (V2)", "v2", "V2Metadata", "name, version, extensions"),
        "/v2/health/live": _get("Liveness (V2)", "v2", "V2Status", '{"live": true}'),
        "/v2/health/ready": _get("Readiness (V2)", "v2", "V2Status", '{"ready": true}'),
        "/v2/models/{name}": {
            "get": {
                "summary": "Model metadata (V2)",
                "tags": ["v2"],
                "parameters": [model_name_param],
                "responses": {"200": _json("V2Metadata", "Metadata"), "404": _V2_ERRORS["404"]},
            }
        },
        "/v2/models/{name}/ready": {
            "get": {
                "summary": "Model readiness (V2)",
                "tags": ["v2"],
                "parameters": [model_name_param],
                "responses": {"200": _json("V2Status", "ready"), "404": _V2_ERRORS["404"]},
            }
        },
        "/v2/models/{name}/infer": {
            "post": {
                "summary": "Infer digit probabilities (Open Inference Protocol V2)",
                "tags": ["v2"],
                "parameters": [model_name_param],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("V2InferenceRequest")}},
                },
                "responses": {"200": _json("V2InferenceResponse", "Probabilities"), **_V2_ERRORS},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "tags": ["meta"],
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hello-kubeflow model server",
            "version": __version__,
            "description": (
                "MNIST digit classifier served with the Seldon Core v1 microservice protocol "
                "and the Open Inference Protocol (V2). Inputs are 784 pixels scaled to [0, 1]."
            ),
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
