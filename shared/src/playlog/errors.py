"""Domain errors. Each carries its HTTP status, so one handler can render them all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class AppError(Exception):
    """Base of every expected failure. Never a 500: unexpected failures are not AppErrors."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(AppError):
    status_code = 422
    code = "validation_error"


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"


class BadGateway(AppError):
    """An upstream service (Spotify) answered with something we cannot use."""

    status_code = 502
    code = "bad_gateway"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"


class ConfigurationError(Exception):
    """Settings are missing or invalid. Raised at startup; never carries a secret's value."""


def reason(error: Mapping[str, Any]) -> str:
    """The text of one of Pydantic's errors, without the "Value error, " it puts before
    the message of each check of our own (which says what is wrong by itself)."""
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")
