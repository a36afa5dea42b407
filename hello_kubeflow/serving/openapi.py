"""The OpenAPI 3.1 description of every endpoint, stating the real constraints (`/openapi.json`)."""

from __future__ import annotations

from typing import Any

from hello_kubeflow import __version__
from hello_kubeflow.serving.features import N_CLASSES, N_FEATURES
from hello_kubeflow.serving.protocol import V2_NUMERIC_TYPES

_PIXEL = {"type": "number", "minimum": 0, "maximum": 1}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
_ROW = {"type": "array", "items": _PIXEL, "minItems": N_FEATURES, "maxItems": N_FEATURES}
_ROWS = {"type": "array", "items": _ROW, "minItems": 1}
_WHOLE_PIXEL = {"type": "integer", "minimum": 0, "maximum": 1}
# [n, 784]. That the values fill it (n x 784 of them) is beyond JSON Schema: said in words.
_SHAPE = {
    "type": "array",
    "prefixItems": [{"type": "integer", "minimum": 1}, {"const": N_FEATURES}],
    "minItems": 2,
    "maxItems": 2,
}
_FILLS_SHAPE = "holds shape[0] x 784 values"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": "#/components/schemas/" + name}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(schema: str, *statuses: str) -> dict[str, Any]:
    said = {
        "400": "Malformed request: what is wrong and how to fix it",
        "404": "No model of that name (or version) is served here",
        "405": "Method not allowed on this path (the Allow header lists those that are)",
        "408": "The request did not arrive within HK_REQUEST_TIMEOUT; the connection is closed",
        "413": "Request body over the server's limit (HK_MAX_BODY_BYTES); the connection is closed",
        "415": "multipart/form-data is not supported",
    }
    return {status: _json(schema, said[status]) for status in statuses}


_SELDON_BODY_ERRORS = _errors("SeldonError", "400", "405", "408", "413", "415")
_GET_ERRORS = _errors("SeldonError", "405")
_V2_GET_ERRORS = _errors("V2Error", "404", "405")
_MODEL_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "the served version (GET /v2/models/{name} lists it); any other is a 404",
    "schema": {"type": "string"},
}


def _seldon_post(summary: str, request: str, answer: str, described: str) -> dict[str, Any]:
    """A POST taking the message as a JSON body or as a form's `json` field, JSON-encoded."""
    return {
        "summary": summary,
        "tags": ["seldon"],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref(request)},
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["json"],
                        "properties": {"json": _ref(request)},
                    },
                    "encoding": {"json": {"contentType": "application/json"}},
                },
            },
        },
        "responses": {"200": _json(answer, described), **_SELDON_BODY_ERRORS},
    }


def _get(
    summary: str,
    tag: str,
    answer: dict[str, Any],
    errors: dict[str, Any] = _GET_ERRORS,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A GET answering `answer` (the 200 response), or `errors`."""
    operation: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if parameters:
        operation["parameters"] = parameters
    operation["responses"] = {"200": answer, **errors}
    return {"get": operation}


def _seldon_get(summary: str, request: str, answer: str, described: str) -> dict[str, Any]:
    """A GET taking the message in its `json` query argument, JSON-encoded."""
    json_argument = {
        "name": "json",
        "in": "query",
        "required": True,
        "content": {"application/json": {"schema": _ref(request)}},
    }
    return _get(summary, "seldon", _json(answer, described), _SELDON_BODY_ERRORS, [json_argument])


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_PREDICT = _seldon_post(
    "Predict digit probabilities (Seldon protocol)",
    "SeldonMessage",
    "SeldonPrediction",
    "One row of ten probabilities per image",
)
_FEEDBACK = _seldon_post(
    "Send feedback (counted; answered as the Seldon wrapper answers it)",
    "SeldonFeedback",
    "SeldonFeedbackAnswer",
    "An empty prediction, as the wrapper answers feedback",
)
# Typed as the Meta message of Seldon's proto/prediction.proto (SeldonIO/seldon-core v1.17.1).
_META = {
    "type": "object",
    "description": "puid, tags, metrics and requestPath are echoed; puid is made when absent",
    "properties": {
        "puid": {"type": "string"},
        "tags": {"type": "object"},
        "routing": {  # map<string, int32> in prediction.proto
            "type": "object",
            "additionalProperties": {
                "type": "integer",
                "minimum": -(2**31),
                "maximum": 2**31 - 1,
            },
        },
        "requestPath": {"type": "object", "additionalProperties": {"type": "string"}},
        "metrics": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "type": {"enum": ["COUNTER", "GAUGE", "TIMER"]},
                    "value": {"type": "number"},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    },
}
_NAMES = {
    "description": "none, or the 784 feature names X1 ... X784",
    "type": "array",
    "items": {"type": "string"},
    "anyOf": [{"maxItems": 0}, {"minItems": N_FEATURES, "maxItems": N_FEATURES}],
}
# A Seldon message inside feedback: the fields of the wrapper's proto/prediction.proto
# (SeldonMessage, DefaultData, Meta), unknown ones refused as its proto parser does.
_FEEDBACK_MESSAGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "status": {"type": "object"},
        "meta": {
            "type": "object",
            "additionalProperties": False,
            "properties": _META["properties"],
        },
        "data": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "names": {"type": "array", "items": {"type": "string"}},
                "tensor": {"type": "object"},
                "ndarray": {"type": "array"},
                "tftensor": {"type": "object"},
            },
        },
        "binData": {"type": "string"},
        "strData": {"type": "string"},
        "jsonData": {},
        "customData": {"type": "object"},
    },
}

_INT_TYPES = sorted(t for t in V2_NUMERIC_TYPES if "INT" in t)
_FLOAT_TYPES = sorted(V2_NUMERIC_TYPES - set(_INT_TYPES))


def _v2_input(datatypes: list[str], pixel: dict[str, Any]) -> dict[str, Any]:
    """A V2 input tensor of one of `datatypes`, its data flat or as rows of `pixel`s."""
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "description": f"data {_FILLS_SHAPE}, in [0, 1], flat or as rows",
        "properties": {
            "name": {"type": "string"},
            "shape": _SHAPE,
            "datatype": {"enum": datatypes},
            "parameters": {"type": "object"},
            "data": {
                "type": "array",
                "anyOf": [
                    {"items": pixel, "minItems": N_FEATURES},
                    {"items": {**_ROW, "items": pixel}, "minItems": 1},
                ],
            },
        },
    }


_SCHEMAS: dict[str, Any] = {
    "SeldonMessage": {
        "type": "object",
        "description": "data.ndarray rows, data.tensor of shape [n, 784], or jsonData rows",
        "properties": {
            "data": {
                "type": "object",
                "properties": {
                    "names": _NAMES,
                    "ndarray": _ROWS,
                    "tensor": {
                        "type": "object",
                        "required": ["shape", "values"],
                        "description": f"values {_FILLS_SHAPE}, numbers in [0, 1]",
                        "properties": {
                            "shape": _SHAPE,
                            "values": {"type": "array", "items": _PIXEL, "minItems": N_FEATURES},
                        },
                    },
                },
                "anyOf": [{"required": ["ndarray"]}, {"required": ["tensor"]}],
            },
            "jsonData": _ROWS,
            "meta": _META,
        },
        "anyOf": [{"required": ["data"]}, {"required": ["jsonData"]}],
    },
    "SeldonPrediction": {
        "type": "object",
        "required": ["data", "meta"],
        "properties": {
            "data": {
                "type": "object",
                "required": ["names"],
                "properties": {
                    "names": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": N_CLASSES,
                        "maxItems": N_CLASSES,
                    },
                    "ndarray": {
                        "type": "array",
                        "items": {
                            "type": "array",
                            "items": _PROBABILITY,
                            "minItems": N_CLASSES,
                            "maxItems": N_CLASSES,
                        },
                    },
                    "tensor": {
                        "type": "object",
                        "required": ["shape", "values"],
                        "properties": {
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "values": {"type": "array", "items": _PROBABILITY},
                        },
                    },
                },
            },
            "meta": _META,
        },
    },
    "SeldonFeedback": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "request": _FEEDBACK_MESSAGE,
            "response": _FEEDBACK_MESSAGE,
            "truth": _FEEDBACK_MESSAGE,
            "reward": {"type": "number"},
        },
    },
    "SeldonFeedbackAnswer": {
        "type": "object",
        "required": ["data", "meta"],
        "properties": {"data": {"type": "object"}, "meta": _META},
    },
    "SeldonError": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {
                "type": "object",
                "required": ["code", "info", "reason", "status"],
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
        "required": ["strData"],
        "properties": {"strData": {"type": "string"}, "meta": {"type": "object"}},
    },
    "V2InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "anyOf": [_v2_input(_FLOAT_TYPES, _PIXEL), _v2_input(_INT_TYPES, _WHOLE_PIXEL)]
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "enum": ["probabilities"]}},
                },
            },
        },
    },
    "V2InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string"},
                        "parameters": {"type": "object"},
                        "data": {"type": "array", "items": _PROBABILITY},
                    },
                },
            },
        },
    },
    "V2Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "V2Metadata": {"type": "object"},
    "V2Status": {"type": "object"},
}


def _v2_model_paths(prefix: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """Metadata, readiness and inference of the model at `prefix` (with a version or not)."""
    return {
        prefix: _get(
            "Model metadata (V2)", "v2", _json("V2Metadata", "Metadata"), _V2_GET_ERRORS, parameters
        ),
        prefix + "/ready": _get(
            "Model readiness (V2)", "v2", _json("V2Status", "ready"), _V2_GET_ERRORS, parameters
        ),
        prefix + "/infer": {
            "post": {
                "summary": "Infer digit probabilities (Open Inference Protocol V2)",
                "tags": ["v2"],
                "parameters": parameters,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("V2InferenceRequest")}},
                },
                "responses": {
                    "200": _json("V2InferenceResponse", "Probabilities"),
                    **_errors("V2Error", "400", "404", "405", "413"),
                    **_errors("SeldonError", "408"),
                },
            }
        },
    }


def openapi_document(model_name: str, max_body_bytes: int = 8 * 1024 * 1024) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route `app.create_app` serves, for `model_name`."""
    name_param = {**_MODEL_NAME, "schema": {"type": "string", "enum": [model_name]}}
    health = _get(
        "Model health (a real prediction on a blank image)",
        "seldon",
        _json("SeldonStatus", "healthy"),
    )
    metadata = _get("Model metadata (Seldon)", "seldon", _json("SeldonMetadata", "Metadata"))
    paths: dict[str, Any] = {
        "/api/v1.0/predictions": {"post": _PREDICT},
        "/api/v0.1/predictions": {"post": _PREDICT},
        "/predict": {
            "post": _PREDICT,
            **_seldon_get(
                "Predict with the message in the json query argument",
                "SeldonMessage",
                "SeldonPrediction",
                "Probabilities",
            ),
        },
        "/api/v1.0/feedback": {"post": _FEEDBACK},
        "/api/v0.1/feedback": {"post": _FEEDBACK},
        "/send-feedback": {
            "post": _FEEDBACK,
            **_seldon_get(
                "Send feedback in the json query argument",
                "SeldonFeedback",
                "SeldonFeedbackAnswer",
                "Counted",
            ),
        },
        "/health/ping": _get("Liveness: answers pong", "seldon", _text("pong")),
        "/health/status": health,
        "/api/v1.0/health/status": health,
        "/api/v1.0/metadata": metadata,
        "/metadata": metadata,
        "/metrics": _get(
            "Feedback counters (Prometheus text, the wrapper's metric names)",
            "seldon",
            _text("counters"),
        ),
        "/v2": _get("Server metadata (V2)", "v2", _json("V2Metadata", "name, version, extensions")),
        "/v2/health/live": _get("Liveness (V2)", "v2", _json("V2Status", '{"live": true}')),
        "/v2/health/ready": _get("Readiness (V2)", "v2", _json("V2Status", '{"ready": true}')),
        **_v2_model_paths("/v2/models/{name}", [name_param]),
        **_v2_model_paths("/v2/models/{name}/versions/{version}", [name_param, _VERSION]),
        "/openapi.json": _get(
            "This document",
            "meta",
            {
                "description": "OpenAPI 3.1",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hello-kubeflow model server",
            "version": __version__,
            "description": (
                "MNIST digit classifier served with the Seldon Core v1 microservice protocol "
                "and the Open Inference Protocol (V2). Inputs are 784 pixels scaled to [0, 1]. "
                f"Bodies over {max_body_bytes:,} bytes are refused with 413. Paths that are "
                "not listed answer 404 (in the V2 error form under /v2, else Seldon's)."
            ),
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
