"""Calling Spotify on a user's behalf from a request: one mapping of Spotify's failures to
the api's errors, used by the admin connection check and the ``spotify_*`` tools."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from playlog.errors import BadGateway, RateLimited, ServiceUnavailable
from playlog.spotify.client import SpotifyClient
from playlog.spotify.errors import SpotifyError, SpotifyRateLimited, SpotifyUnavailable
from playlog_api.cleaning import clean_text

NOT_CONFIGURED = "Spotify is not configured on this server"
REASON_LIMIT = 200
# What configured() and spotify_failures() answer, for the OpenAPI documents.
SPOTIFY_FAILURES = {
    429: "Spotify is rate-limiting this server; Retry-After says when to try again.",
    502: "Spotify refused the call.",
    503: "Spotify is not configured on this server, or unreachable.",
}


def configured(client: SpotifyClient | None) -> SpotifyClient:
    """The app's Spotify client, or 503 when no Spotify app is configured."""
    if client is None:
        raise ServiceUnavailable(NOT_CONFIGURED)
    return client


@contextmanager
def spotify_failures() -> Iterator[None]:
    """Spotify's failures as domain errors: 429 with Retry-After, 503, or 502.

    ``ReauthRequired`` is already a domain error (409) and passes through.
    """
    try:
        yield
    except SpotifyRateLimited as exc:
        seconds = max(1, math.ceil(exc.retry_after_seconds))
        raise RateLimited(
            f"Spotify is rate-limiting this server: try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        ) from None
    except SpotifyUnavailable:
        raise ServiceUnavailable("Spotify is unreachable right now: try again later") from None
    except SpotifyError as exc:
        # Messages of SpotifyError never carry a token (playlog.spotify.errors); the part
        # Spotify wrote (its error's message) is cleaned and cut all the same.
        reason = clean_text(str(exc), REASON_LIMIT)
        raise BadGateway(f"Spotify refused the call: {reason}") from None
