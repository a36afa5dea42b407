"""The Starlette application: Seldon and V2 routes, health, OpenAPI; answers prepared at startup."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hello_kubeflow import __version__
from hello_kubeflow.errors import ServingError
from hello_kubeflow.model.artifact import LoadedModel
from hello_kubeflow.serving.bodies import (
    INLINE_BODY_BYTES,
    feedback_request,
    parse_elsewhere,
    read_body,
    seldon_request,
    v2_request,
)
from hello_kubeflow.serving.describe import ModelCard
from hello_kubeflow.serving.features import N_CLASSES, N_FEATURES, BadInput
from hello_kubeflow.serving.feedback import FeedbackCounter
from hello_kubeflow.serving.openapi import openapi_document
from hello_kubeflow.serving.protocol import SeldonRequest, V2Request
from hello_kubeflow.serving.responses import (
    INTERNAL_ERROR,
    json_bytes,
    new_puid,
    seldon_error,
    seldon_feedback,
    seldon_prediction,
    v2_error,
    v2_prediction,
)

log = logging.getLogger(__name__)

JSON = "application/json"


def create_app(model: LoadedModel, *, model_name: str, max_body_bytes: int) -> Starlette:
    """The ASGI application serving `model` under `model_name`, bodies up to `max_body_bytes`.

    Raises:
        ServingError: when the model does not answer ten probabilities for one image.
    """
    card = ModelCard.of(model, model_name)
    class_names = list(card.class_names)

    def check_model() -> None:
        """One prediction on a blank image: warms the runtime, proves the shapes (ServingError)."""
        answer = np.asarray(model.predict_proba(np.zeros((1, N_FEATURES), np.float32)))
        if answer.shape != (1, N_CLASSES) or len(class_names) != N_CLASSES:
            raise ServingError(
                f"the model answered shape {answer.shape} with {len(class_names)} class "
                f"names; a digit model must give (1, {N_CLASSES}) and {N_CLASSES} names: "
                "serve a model made by `inv train`"
            )

    check_model()
    # Every answer that can be, prepared before serving.
    seldon_metadata = json_bytes(card.seldon_metadata())
    v2_metadata = json_bytes(card.v2_metadata())
    v2_server = json_bytes({"name": "hello-kubeflow", "version": __version__, "extensions": []})
    model_ready = json_bytes({"name": model_name, "ready": True})
    openapi = json_bytes(openapi_document(model_name, max_body_bytes))
    counter = FeedbackCounter()

    def probabilities(features: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(features), dtype=np.float32)

    def seldon_answer(request: SeldonRequest) -> bytes:
        return seldon_prediction(
            probabilities(request.features),
            kind=request.kind,
            class_names=class_names,
            puid=request.puid or new_puid(),
            tags=request.tags,
            request_path=request.request_path,
            metrics=request.metrics,
        )

    def v2_answer(request: V2Request) -> bytes:
        return v2_prediction(
            probabilities(request.features),
            model_name=card.name,
            model_version=card.version,
            request_id=request.id,
            class_names=class_names,
        )

    async def seldon_predict(request: Request) -> Response:
        try:
            body = await read_body(request, max_body_bytes)
            args = (body, request.headers.get("content-type", ""), request.query_params.get("json"))
            if len(body) <= INLINE_BODY_BYTES:
                answer = seldon_answer(seldon_request(*args))
            else:
                parsed = await parse_elsewhere(seldon_request, *args)
                answer = await run_in_threadpool(seldon_answer, parsed)
        except BadInput as exc:
            return _refusal(seldon_error(exc.message, exc.status), exc.status)
        except Exception:
            log.exception("prediction failed")
            message = "the model failed on this request; see the server log"
            return _json(seldon_error(message, 500, INTERNAL_ERROR), 500)
        return _json(answer)

    async def send_feedback(request: Request) -> Response:
        try:
            body = await read_body(request, max_body_bytes)
            args = (body, request.headers.get("content-type", ""), request.query_params.get("json"))
            if len(body) <= INLINE_BODY_BYTES:
                feedback = feedback_request(*args)
            else:
                feedback = await parse_elsewhere(feedback_request, *args)
            counter.add(feedback.reward)
            answer = seldon_feedback(feedback.kind, feedback.puid)
        except BadInput as exc:
            return _refusal(seldon_error(exc.message, exc.status), exc.status)
        return _json(answer)

    async def metrics(request: Request) -> Response:
        return Response(counter.prometheus(), media_type="text/plain; version=0.0.4")

    async def v2_infer(request: Request) -> Response:
        missing = _unknown_model(request, card)
        if missing is not None:
            return missing
        try:
            body = await read_body(request, max_body_bytes)
            if len(body) <= INLINE_BODY_BYTES:
                answer = v2_answer(v2_request(body))
            else:
                parsed = await parse_elsewhere(v2_request, body)
                answer = await run_in_threadpool(v2_answer, parsed)
        except BadInput as exc:
            return _refusal(v2_error(exc.message), exc.status)
        except Exception:
            log.exception("inference failed")
            return _json(v2_error("the model failed on this request; see the server log"), 500)
        return _json(answer)

    async def health_status(request: Request) -> Response:
        try:
            check_model()  # ~10 us: a real answer, not a flag
        except Exception as exc:
            log.exception("health check failed")
            return _json(seldon_error(f"the model cannot answer: {exc}", 503, INTERNAL_ERROR), 503)
        return _json(b'{"strData":"healthy","meta":{}}')

    async def v2_model(request: Request) -> Response:
        return _unknown_model(request, card) or _json(v2_metadata)

    async def v2_model_ready(request: Request) -> Response:
        return _unknown_model(request, card) or _json(model_ready)

    routes = [
        Route("/api/v1.0/predictions", seldon_predict, methods=["POST"]),
        Route("/api/v0.1/predictions", seldon_predict, methods=["POST"]),
        Route("/predict", seldon_predict, methods=["GET", "POST"]),
        Route("/api/v1.0/feedback", send_feedback, methods=["POST"]),
        Route("/api/v0.1/feedback", send_feedback, methods=["POST"]),
        Route("/send-feedback", send_feedback, methods=["GET", "POST"]),
        Route("/health/ping", _fixed(b"pong", "text/plain")),
        Route("/health/status", health_status),
        Route("/api/v1.0/health/status", health_status),
        Route("/metrics", metrics),
        Route("/api/v1.0/metadata", _fixed(seldon_metadata)),
        Route("/metadata", _fixed(seldon_metadata)),
        Route("/v2", _fixed(v2_server)),
        Route("/v2/health/live", _fixed(b'{"live":true}')),
        Route("/v2/health/ready", _fixed(b'{"ready":true}')),
        Route("/v2/models/{name}", v2_model),
        Route("/v2/models/{name}/ready", v2_model_ready),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}", v2_model),
        Route("/v2/models/{name}/versions/{version}/ready", v2_model_ready),
        Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
        Route("/openapi.json", _fixed(openapi)),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    # A trailing slash is a 404: Starlette's redirect would build Location from the Host header.
    app.router.redirect_slashes = False
    return app


def _json(content: bytes, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type=JSON)


def _refusal(content: bytes, status: int) -> Response:
    """An error answer; a 413 also closes the connection, since its body is left unread."""
    return Response(content, status, {"connection": "close"} if status == 413 else None, JSON)


def _fixed(content: bytes, media_type: str = JSON) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint answering the same bytes every time (prepared at startup)."""

    async def endpoint(request: Request) -> Response:
        return Response(content, media_type=media_type)

    return endpoint


def _unknown_model(request: Request, card: ModelCard) -> Response | None:
    """404 for a model name, or a version, that this server does not serve.

    As MLServer 1.7.1 (SeldonIO/MLServer, mlserver/registry.py `get_model`, mlserver/errors.py
    `ModelNotFound`); the spec lets a server choose a version only when the URL names none
    (kserve/kserve v0.20.0, docs/predict-api/v2/required_api.md).
    """
    name = request.path_params["name"]
    if name != card.name:
        message = f"model {name!r} is not served here; this server serves {card.name!r}"
        return _json(v2_error(message), 404)
    version = request.path_params.get("version", card.version)
    if version != card.version:
        message = (
            f"model {name!r} has no version {version!r}; this server serves version "
            f"{card.version!r} (or leave /versions/... out of the URL)"
        )
        return _json(v2_error(message), 404)
    return None


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 and friends in the protocol's own error form, never an HTML page."""
    assert isinstance(exc, HTTPException)
    message = f"{exc.detail}: {request.method} {request.url.path}"
    v2 = request.url.path.startswith("/v2")
    body = v2_error(message) if v2 else seldon_error(message, exc.status_code)
    headers = exc.headers if exc.status_code == 405 else None  # 405: the Allow header
    return Response(body, exc.status_code, headers, JSON)
