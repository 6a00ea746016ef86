"""Typed failures of Spotify calls. Messages never contain a token."""

from __future__ import annotations

from datetime import datetime


class SpotifyError(Exception):
    """Base of every Spotify failure."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SpotifyBadRequest(SpotifyError):
    """400: the request itself is wrong (a bug on our side, or bad user input)."""


class SpotifyUnauthorized(SpotifyError):
    """401 even after one refresh: the access token cannot be made to work."""


class SpotifyForbidden(SpotifyError):
    """403: missing scope, or an endpoint closed to development-mode apps."""


class SpotifyNotFound(SpotifyError):
    """404: no such item."""


class SpotifyRateLimited(SpotifyError):
    """429 with a Retry-After longer than we are willing to wait: reschedule at retry_at."""

    def __init__(self, retry_at: datetime, retry_after_seconds: float) -> None:
        super().__init__(
            f"Spotify asked to wait {retry_after_seconds:.0f}s (until {retry_at.isoformat()})",
            status=429,
        )
        self.retry_at = retry_at
        self.retry_after_seconds = retry_after_seconds


class SpotifyUnavailable(SpotifyError):
    """5xx, time-outs or connection failures that outlasted every retry."""


class SpotifyInvalidGrant(SpotifyError):
    """The refresh token is dead (revoked, or six months old): the user must reconnect."""


class SpotifyProtocolError(SpotifyError):
    """Spotify answered with something that is not the documented shape."""
