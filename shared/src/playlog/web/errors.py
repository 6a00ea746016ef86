"""One error envelope for every service: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from playlog.errors import AppError
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
            "message": error.get("msg", "invalid value"),
        }
        for error in exc.errors()
    ]
    summary = "; ".join(
        f"{'.'.join(item['location'][1:]) or item['location'][0]}: {item['message']}"
        for item in details
    )
    return error_response(422, "validation_error", summary or "invalid request", details)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


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
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
