"""The typed async Spotify client: accounts (token) calls and the Web API endpoints we use.

One ``httpx.AsyncClient`` is built by the caller's lifespan and shared. Failures become
typed exceptions (``playlog.spotify.errors``):

- 429: Retry-After (seconds or an HTTP date) is honoured app-wide up to
  ``RetryPolicy.max_retry_after``; a longer wait raises ``SpotifyRateLimited`` at once with
  the retry deadline so the caller can reschedule instead of blocking.
- 5xx, time-outs and connection errors back off exponentially with jitter, up to
  ``RetryPolicy.max_attempts`` attempts, then raise ``SpotifyUnavailable``.
- 401 triggers one token refresh through the ``TokenSource`` and one retry.

Tokens never reach a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from playlog.settings import SpotifyAppSettings
from playlog.spotify.errors import (
    SpotifyBadRequest,
    SpotifyError,
    SpotifyForbidden,
    SpotifyInvalidGrant,
    SpotifyNotFound,
    SpotifyProtocolError,
    SpotifyRateLimited,
    SpotifyUnauthorized,
    SpotifyUnavailable,
)
from playlog.spotify.limiter import AppRateLimiter
from playlog.spotify.models import (
    Artist,
    CurrentUser,
    PagedArtists,
    PagedTracks,
    RecentlyPlayed,
    SearchResults,
    TokenResponse,
    Track,
)

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
SEARCH_LIMIT_MAX = 10
SearchType = Literal["track", "artist", "album"]


class TokenSource(Protocol):
    """Supplies a user's access token; refreshes it when Spotify rejects it."""

    async def access_token(self) -> str: ...

    async def refreshed_access_token(self, rejected: str) -> str: ...


@dataclass
class CallStats:
    """HTTP requests made (retries included) and 429 answers received."""

    requests: int = 0
    rate_limited: int = 0


_call_stats: ContextVar[CallStats | None] = ContextVar("spotify_call_stats", default=None)


@contextmanager
def track_calls() -> Iterator[CallStats]:
    """Count the Spotify requests of the current task (and the tasks it starts) in a block.

    The client is shared by every user's work, so counting per job needs the context
    of the caller rather than a counter on the client.
    """
    stats = CallStats()
    token = _call_stats.set(stats)
    try:
        yield stats
    finally:
        _call_stats.reset(token)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    # Longest Retry-After we sleep through; beyond it the call fails with the deadline.
    max_retry_after_seconds: float = 60.0


@dataclass
class SpotifyClient:
    http: httpx.AsyncClient
    api_base_url: str
    accounts_base_url: str
    client_id: str
    client_secret: str | None = None
    limiter: AppRateLimiter = field(default_factory=AppRateLimiter)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_settings(cls, settings: SpotifyAppSettings, http: httpx.AsyncClient) -> SpotifyClient:
        """The configured app, with the app-wide limits from the environment."""
        if settings.spotify_client_id is None:
            raise ValueError("SPOTIFY_CLIENT_ID is not set")
        secret = settings.spotify_client_secret
        return cls(
            http=http,
            api_base_url=settings.spotify_api_base_url,
            accounts_base_url=settings.spotify_accounts_base_url,
            client_id=settings.spotify_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            limiter=AppRateLimiter(
                max_concurrent=settings.spotify_max_concurrent_requests,
                per_window=settings.spotify_requests_per_30s,
            ),
            retry=RetryPolicy(max_retry_after_seconds=settings.spotify_max_retry_after_seconds),
        )

    # --- accounts service -----------------------------------------------------------

    async def exchange_code(
        self, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> TokenResponse:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        return await self._token(form)

    async def refresh(self, refresh_token: str) -> TokenResponse:
        """Raises SpotifyInvalidGrant when the refresh token is dead."""
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, form: dict[str, str]) -> TokenResponse:
        url = f"{self.accounts_base_url.rstrip('/')}/api/token"
        if self.client_secret:
            auth = httpx.BasicAuth(self.client_id, self.client_secret)
            request = partial(self.http.post, url, data=form, auth=auth)
        else:
            # A public client (PKCE without a secret) names itself in the form.
            request = partial(self.http.post, url, data={**form, "client_id": self.client_id})
        response = await self._send(request, "token")
        if response.status_code == 200:
            return _parse(TokenResponse, response)
        error = _json_field(response, "error")
        if error == "invalid_grant":
            raise SpotifyInvalidGrant(
                f"refresh token rejected: {_json_field(response, 'error_description')}",
                status=response.status_code,
            )
        raise SpotifyBadRequest(
            f"token request failed: {error or response.status_code}", status=response.status_code
        )

    # --- Web API -------------------------------------------------------------------

    async def me(self, tokens: TokenSource) -> CurrentUser:
        return await self._get(tokens, CurrentUser, "/me")

    async def recently_played(
        self,
        tokens: TokenSource,
        *,
        after: datetime | None = None,
        before: datetime | None = None,
        limit: int = 50,
    ) -> RecentlyPlayed:
        if after is not None and before is not None:
            raise ValueError("after and before are mutually exclusive")
        if not 1 <= limit <= 50:
            raise ValueError("limit must be between 1 and 50")
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = _ms(after)
        if before is not None:
            params["before"] = _ms(before)
        return await self._get(tokens, RecentlyPlayed, "/me/player/recently-played", params)

    async def follow(self, tokens: TokenSource, model: type[M], next_url: str) -> M:
        """Fetch a ``next`` link of a previous page (only links to our API base)."""
        if not next_url.startswith(self.api_base_url.rstrip("/") + "/"):
            raise SpotifyProtocolError("next link points outside the configured API")
        return await self._call(tokens, model, next_url, None)

    async def top(
        self,
        tokens: TokenSource,
        entity: Literal["tracks", "artists"],
        *,
        time_range: Literal["short_term", "medium_term", "long_term"] = "medium_term",
        limit: int = 20,
        offset: int = 0,
    ) -> PagedTracks | PagedArtists:
        if not 1 <= limit <= 50 or offset < 0:
            raise ValueError("limit must be 1-50 and offset not negative")
        params = {"time_range": time_range, "limit": limit, "offset": offset}
        model: type[PagedTracks | PagedArtists] = (
            PagedTracks if entity == "tracks" else PagedArtists
        )
        return await self._get(tokens, model, f"/me/top/{entity}", params)

    async def search(
        self, tokens: TokenSource, query: str, types: Sequence[SearchType], *, limit: int = 10
    ) -> SearchResults:
        if not query.strip():
            raise ValueError("query must not be empty")
        if not types:
            raise ValueError("at least one type is required")
        # Development-mode apps get a 400 above 10.
        if not 1 <= limit <= SEARCH_LIMIT_MAX:
            raise ValueError(f"limit must be between 1 and {SEARCH_LIMIT_MAX}")
        params: dict[str, str | int] = {"q": query, "type": ",".join(types), "limit": limit}
        return await self._get(tokens, SearchResults, "/search", params)

    async def track(self, tokens: TokenSource, track_id: str) -> Track:
        return await self._get(tokens, Track, f"/tracks/{_spotify_id(track_id)}")

    async def artist(self, tokens: TokenSource, artist_id: str) -> Artist:
        return await self._get(tokens, Artist, f"/artists/{_spotify_id(artist_id)}")

    # --- plumbing --------------------------------------------------------------------

    async def _get(
        self,
        tokens: TokenSource,
        model: type[M],
        path: str,
        params: Mapping[str, str | int] | None = None,
    ) -> M:
        return await self._call(tokens, model, f"{self.api_base_url.rstrip('/')}{path}", params)

    async def _call(
        self,
        tokens: TokenSource,
        model: type[M],
        url: str,
        params: Mapping[str, str | int] | None,
    ) -> M:
        token = await tokens.access_token()
        for refreshed in (False, True):
            request = partial(
                self.http.get, url, params=params, headers={"Authorization": f"Bearer {token}"}
            )
            response = await self._send(request, url)
            if response.status_code == 401 and not refreshed:
                token = await tokens.refreshed_access_token(token)
                continue
            break
        if response.status_code == 200:
            return _parse(model, response)
        message = _json_field(response, "message", nested="error") or response.reason_phrase
        status = response.status_code
        errors: dict[int, type[SpotifyError]] = {
            400: SpotifyBadRequest,
            401: SpotifyUnauthorized,
            403: SpotifyForbidden,
            404: SpotifyNotFound,
        }
        raise errors.get(status, SpotifyError)(f"Spotify {status}: {message}", status=status)

    async def _send(
        self, request: Callable[[], Awaitable[httpx.Response]], what: str
    ) -> httpx.Response:
        """One logical call: retries 429, 5xx and transport failures per the policy."""
        policy = self.retry
        for attempt in range(1, policy.max_attempts + 1):
            last_attempt = attempt == policy.max_attempts
            # Spotify limits the app, not the user: while a Retry-After longer than we
            # wait is in force, every call fails fast instead of collecting its own 429.
            blocked = self.limiter.paused_for()
            if blocked > policy.max_retry_after_seconds:
                raise SpotifyRateLimited(datetime.now(UTC) + timedelta(seconds=blocked), blocked)
            try:
                async with self.limiter.slot():
                    response = await request()
                stats = _call_stats.get()
                if stats is not None:
                    stats.requests += 1
                    stats.rate_limited += response.status_code == 429
            except httpx.TransportError as exc:
                log.warning("spotify %s failed: %s (attempt %d)", what, type(exc).__name__, attempt)
                if last_attempt:
                    raise SpotifyUnavailable(
                        f"Spotify unreachable after {attempt} attempts: {type(exc).__name__}"
                    ) from None
                await self.sleep(self._backoff(attempt))
                continue
            if response.status_code == 429:
                wait = _retry_after_seconds(response)
                if wait > policy.max_retry_after_seconds or last_attempt:
                    self.limiter.pause(wait)
                    raise SpotifyRateLimited(datetime.now(UTC) + timedelta(seconds=wait), wait)
                log.warning("spotify rate limit: waiting %.1fs (attempt %d)", wait, attempt)
                # The wait happens in the shared limiter, so every caller of this app
                # holds off, not just this one.
                self.limiter.pause(wait)
                continue
            if response.status_code >= 500:
                log.warning(
                    "spotify %s answered %d (attempt %d)", what, response.status_code, attempt
                )
                if last_attempt:
                    raise SpotifyUnavailable(
                        f"Spotify answered {response.status_code} {attempt} times",
                        status=response.status_code,
                    )
                await self.sleep(self._backoff(attempt))
                continue
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self.retry.max_delay_seconds, self.retry.base_delay_seconds * 2 ** (attempt - 1)
        )
        # Jitter spreads the retries of many users apart.
        return self.rng.uniform(ceiling / 2, ceiling)


def _retry_after_seconds(response: httpx.Response) -> float:
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return 1.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return 1.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise SpotifyProtocolError(
            f"unexpected {model.__name__} from Spotify: {exc.error_count()} problem(s)",
            status=response.status_code,
        ) from None


def _json_field(response: httpx.Response, name: str, *, nested: str | None = None) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if nested is not None:
        body = body.get(nested) if isinstance(body, dict) else None
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return int(moment.timestamp() * 1000)


def _spotify_id(value: str) -> str:
    if not value.isalnum() or len(value) != 22:
        raise ValueError(f"not a Spotify id: {value!r}")
    return value
