"""One error envelope for every service: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from playlog.errors import AppError, reason
from playlog.logging import LOGGED_MARK, log_context
from playlog.web.request_id import REQUEST_ID_HEADER

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class FieldProblem(BaseModel):
    location: list[str] = Field(description='Where, e.g. ["query", "days"].')
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable and machine-readable: validation_error, not_found, …")
    message: str = Field(description="What went wrong and, where it helps, what to do.")
    details: list[FieldProblem] | dict[str, Any] | None = Field(
        default=None, description="Each invalid field of a validation error; other facts."
    )


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


_SCHEMAS = "#/components/schemas/"
# FastAPI's answer to a body it cannot even split into fields (a form without its boundary).
_UNPARSABLE = "The body could not be parsed."
# FastAPI's own description of a 422 body, which these handlers never send.
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Describe the 4xx and 5xx answers of an OpenAPI document with :class:`ErrorResponse`,
    the envelope the handlers below send, in place of FastAPI's own 422 model (which
    names a ``detail`` list no answer holds) or no body at all; an answer a route
    describes itself is left as it is. Returns ``spec``."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_422:
        schemas.pop(name, None)
    model = ErrorResponse.model_json_schema(ref_template=_SCHEMAS + "{model}")
    schemas.update(model.pop("$defs", {}))
    schemas["ErrorResponse"] = model
    body = {"application/json": {"schema": {"$ref": _SCHEMAS + "ErrorResponse"}}}
    fastapi_422 = {"application/json": {"schema": {"$ref": _SCHEMAS + _FASTAPI_422[0]}}}
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if "requestBody" in operation:
                operation["responses"].setdefault("400", {"description": _UNPARSABLE})
            for status, response in operation["responses"].items():
                content = response.get("content")
                if status[:1] in ("4", "5") and (content is None or content == fastapi_422):
                    response["content"] = body
    return spec


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = jsonable_encoder(details)
    return JSONResponse({"error": body}, status_code=status_code, headers=headers)


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "location": [str(part) for part in error.get("loc", ())],
            "message": reason(error),
        }
        for error in exc.errors()
    ]
    summary = "; ".join(
        f"{'.'.join(item['location'][1:]) or item['location'][0]}: {item['message']}"
        for item in details
    )
    return error_response(422, "validation_error", summary or "invalid request", details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        # The router names the methods of the first route of the path only; a path may
        # have several (GET, PATCH and DELETE of one user).
        headers["Allow"] = ", ".join(allowed)
    return error_response(exc.status_code, code, str(exc.detail), headers=headers or None)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this handler outside every middleware, so the request id is restored
    # from the request state: the one answer that most needs it would lack it otherwise.
    request_id: str | None = getattr(request.state, "request_id", None)
    # The traceback goes to the log only; the client learns nothing about internals.
    with log_context(request_id=request_id):
        # The server would log it again (re-raised by Starlette) without the request id.
        setattr(exc, LOGGED_MARK, True)
        log.error(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return error_response(500, "internal_error", "internal server error", headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """The handlers of every error, and the app's OpenAPI document saying what they send."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
