"""The typed client: against the stand-in, and under 429 storms, 5xx bursts and time-outs."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import pytest_asyncio

from playlog.spotify.client import RetryPolicy, SpotifyClient
from playlog.spotify.errors import (
    SpotifyForbidden,
    SpotifyInvalidGrant,
    SpotifyNotFound,
    SpotifyProtocolError,
    SpotifyRateLimited,
    SpotifyUnauthorized,
    SpotifyUnavailable,
)
from playlog.spotify.limiter import AppRateLimiter
from playlog.spotify.models import PagedTracks, RecentlyPlayed
from playlog.spotify.stand_in import StandInConfig
from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.testing.spotify import REDIRECT_URI, authorization_code

SECRET_TOKEN = "BQD-access-token-that-must-never-be-logged"
CONFIG = StandInConfig(enable_control=True, history_hours=24)


class Sleeps:
    """A fake clock and sleep: records every wait and lets time pass instantly."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 1000.0

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@dataclass
class RefreshingTokens:
    """A TokenSource backed by the client's own refresh call."""

    client: SpotifyClient
    access: str
    refresh: str
    refreshes: list[str] = field(default_factory=list)

    async def access_token(self) -> str:
        return self.access

    async def refreshed_access_token(self, rejected: str) -> str:
        response = await self.client.refresh(self.refresh)
        self.refreshes.append(rejected)
        self.access = response.access_token
        self.refresh = response.refresh_token or self.refresh
        return self.access


@dataclass
class StaticTokens:
    access: str = SECRET_TOKEN

    async def access_token(self) -> str:
        return self.access

    async def refreshed_access_token(self, rejected: str) -> str:
        return self.access


def make_client(
    transport: httpx.AsyncBaseTransport, sleeps: Sleeps, retry: RetryPolicy | None = None
) -> SpotifyClient:
    return SpotifyClient(
        http=httpx.AsyncClient(transport=transport),
        api_base_url="http://spotify/v1",
        accounts_base_url="http://spotify",
        client_id=CONFIG.client_id,
        limiter=AppRateLimiter(sleep=sleeps, clock=sleeps.clock),
        retry=retry or RetryPolicy(),
        sleep=sleeps,
        rng=random.Random(7),
    )


def scripted(responses: list[httpx.Response | Exception]) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        answer = responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), seen


ME = {"id": "u", "uri": "spotify:user:u", "display_name": "U"}


# --- against the stand-in -------------------------------------------------------------


@pytest_asyncio.fixture
async def connected() -> AsyncIterator[tuple[SpotifyClient, RefreshingTokens, httpx.AsyncClient]]:
    app = create_stand_in_app(StandInConfig(enable_control=True, history_hours=24))
    transport = httpx.ASGITransport(app=app)
    sleeps = Sleeps()
    client = make_client(transport, sleeps)
    async with httpx.AsyncClient(transport=transport, base_url="http://spotify") as browser:
        code, verifier = await authorization_code(browser, CONFIG)
        granted = await client.exchange_code(code, REDIRECT_URI, verifier)
        assert granted.refresh_token is not None
        yield client, RefreshingTokens(client, granted.access_token, granted.refresh_token), browser
    await client.http.aclose()


async def test_every_endpoint_against_the_stand_in(
    connected: tuple[SpotifyClient, RefreshingTokens, httpx.AsyncClient],
) -> None:
    client, tokens, _ = connected
    assert (await client.me(tokens)).id == "demo-listener"
    page = await client.recently_played(tokens, limit=20)
    assert len(page.items) == 20
    assert page.next is not None
    older = await client.follow(tokens, RecentlyPlayed, page.next)
    assert older.items[0].played_at < page.items[-1].played_at
    caught_up = await client.recently_played(tokens, after=page.items[0].played_at)
    assert caught_up.items == []
    assert caught_up.cursors is None

    top = await client.top(tokens, "tracks", time_range="long_term", limit=5)
    assert isinstance(top, PagedTracks)
    assert len(top.items) == 5
    found = await client.search(tokens, "sigur", ["artist"], limit=10)
    assert found.artists is not None
    artist_id = found.artists.items[0].id
    assert (await client.artist(tokens, artist_id)).name == "Sigur Rós"
    track_id = page.items[0].track.id
    assert track_id is not None
    assert (await client.track(tokens, track_id)).id == track_id
    with pytest.raises(SpotifyNotFound):
        await client.track(tokens, "A" * 22)


async def test_expired_access_token_is_refreshed_once_and_rotation_kept(
    connected: tuple[SpotifyClient, RefreshingTokens, httpx.AsyncClient],
) -> None:
    client, tokens, browser = connected
    first_refresh_token = tokens.refresh
    await browser.post("/_control/expire-access-tokens")
    assert (await client.me(tokens)).id == "demo-listener"
    assert len(tokens.refreshes) == 1
    assert tokens.refresh != first_refresh_token  # the stand-in rotated it


async def test_revoked_refresh_token_raises_invalid_grant(
    connected: tuple[SpotifyClient, RefreshingTokens, httpx.AsyncClient],
) -> None:
    client, tokens, browser = connected
    await browser.post("/_control/revoke", json={"account": "demo-listener"})
    with pytest.raises(SpotifyInvalidGrant):
        await client.me(tokens)


# --- failure handling with scripted transports ----------------------------------------


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    sleeps = Sleeps()
    transport, seen = scripted(
        [
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(429, headers={"Retry-After": "5"}),
            httpx.Response(200, json=ME),
        ]
    )
    client = make_client(transport, sleeps)
    assert (await client.me(StaticTokens())).id == "u"
    assert len(seen) == 3
    # The shared limiter holds this (and every other) caller for the Retry-After.
    assert sleeps.calls == [3.0, 5.0]


async def test_retry_after_as_http_date() -> None:
    sleeps = Sleeps()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    transport, _ = scripted(
        [httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json=ME)]
    )
    await make_client(transport, sleeps).me(StaticTokens())
    assert 15 <= sleeps.calls[0] <= 21


async def test_long_retry_after_fails_fast_with_the_deadline() -> None:
    sleeps = Sleeps()
    transport, seen = scripted([httpx.Response(429, headers={"Retry-After": "7200"})])
    client = make_client(transport, sleeps, RetryPolicy(max_retry_after_seconds=60))
    before = datetime.now(UTC)
    with pytest.raises(SpotifyRateLimited) as caught:
        await client.me(StaticTokens())
    assert len(seen) == 1
    assert sleeps.calls == []
    assert caught.value.retry_after_seconds == 7200
    assert before + timedelta(seconds=7199) <= caught.value.retry_at


async def test_a_long_retry_after_holds_off_every_later_call_of_the_app() -> None:
    sleeps = Sleeps()
    transport, seen = scripted(
        [httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200, json=ME)]
    )
    client = make_client(transport, sleeps, RetryPolicy(max_retry_after_seconds=60))
    with pytest.raises(SpotifyRateLimited):
        await client.me(StaticTokens())
    # Another user's call: refused without a request while the app is throttled.
    with pytest.raises(SpotifyRateLimited) as caught:
        await client.me(StaticTokens())
    assert len(seen) == 1
    assert 3500 < caught.value.retry_after_seconds <= 3600
    sleeps.now += 3601
    assert (await client.me(StaticTokens())).id == "u"
    assert len(seen) == 2


async def test_server_errors_back_off_exponentially_with_jitter() -> None:
    sleeps = Sleeps()
    transport, seen = scripted(
        [
            httpx.Response(503),
            httpx.Response(502),
            httpx.Response(500),
            httpx.Response(200, json=ME),
        ]
    )
    client = make_client(transport, sleeps, RetryPolicy(base_delay_seconds=1, max_delay_seconds=30))
    await client.me(StaticTokens())
    assert len(seen) == 4
    assert len(sleeps.calls) == 3
    for attempt, delay in enumerate(sleeps.calls, start=1):
        ceiling = 2 ** (attempt - 1)
        assert ceiling / 2 <= delay <= ceiling


async def test_persistent_failures_stop_after_max_attempts() -> None:
    sleeps = Sleeps()
    transport, seen = scripted([httpx.Response(500)] * 4)
    with pytest.raises(SpotifyUnavailable, match="500 4 times"):
        await make_client(transport, sleeps, RetryPolicy(max_attempts=4)).me(StaticTokens())
    assert len(seen) == 4


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectTimeout("slow"), httpx.ConnectError("refused"), httpx.ReadTimeout("stuck")],
)
async def test_transport_failures_are_retried(failure: Exception) -> None:
    sleeps = Sleeps()
    transport, seen = scripted([failure, httpx.Response(200, json=ME)])
    assert (await make_client(transport, sleeps).me(StaticTokens())).id == "u"
    assert len(seen) == 2
    transport, _ = scripted([failure] * 3)
    with pytest.raises(SpotifyUnavailable):
        await make_client(transport, sleeps, RetryPolicy(max_attempts=3)).me(StaticTokens())


async def test_second_401_is_final_and_403_is_forbidden() -> None:
    sleeps = Sleeps()
    transport, seen = scripted([httpx.Response(401), httpx.Response(401)])
    with pytest.raises(SpotifyUnauthorized):
        await make_client(transport, sleeps).me(StaticTokens())
    assert len(seen) == 2
    transport, _ = scripted(
        [httpx.Response(403, json={"error": {"status": 403, "message": "Insufficient scope"}})]
    )
    with pytest.raises(SpotifyForbidden, match="Insufficient scope"):
        await make_client(transport, sleeps).me(StaticTokens())


@pytest.mark.parametrize(
    "body", [b"not json", b'{"id": 5}', b"[]", b'{"items": "none", "limit": 1, "href": "x"}']
)
async def test_malformed_answers_are_protocol_errors(body: bytes) -> None:
    transport, _ = scripted([httpx.Response(200, content=body)])
    with pytest.raises(SpotifyProtocolError):
        await make_client(transport, Sleeps()).me(StaticTokens())


async def test_tokens_never_reach_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    transport, _ = scripted(
        [
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(401),
            httpx.Response(401),
        ]
    )
    with pytest.raises(SpotifyUnauthorized) as caught:
        await make_client(transport, Sleeps()).me(StaticTokens())
    assert SECRET_TOKEN not in caplog.text
    assert SECRET_TOKEN not in str(caught.value)


async def test_foreign_next_links_are_refused() -> None:
    transport, seen = scripted([])
    client = make_client(transport, Sleeps())
    with pytest.raises(SpotifyProtocolError):
        await client.follow(StaticTokens(), RecentlyPlayed, "http://evil.example/v1/steal")
    assert seen == []


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.search(StaticTokens(), "x", ["track"], limit=11),
        lambda c: c.search(StaticTokens(), " ", ["track"]),
        lambda c: c.recently_played(StaticTokens(), limit=51),
        lambda c: c.recently_played(
            StaticTokens(), after=datetime.now(UTC), before=datetime.now(UTC)
        ),
        lambda c: c.track(StaticTokens(), "../me"),
    ],
)
async def test_bad_arguments_fail_before_any_request(
    call: Callable[[SpotifyClient], object],
) -> None:
    transport, seen = scripted([])
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        await call(make_client(transport, Sleeps()))  # type: ignore[misc]
    assert seen == []


async def test_limiter_keeps_to_the_30_second_budget() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = AppRateLimiter(per_window=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        async with limiter.slot():
            now[0] += 1
    assert waits == [27.0]  # the 4th call waits until the first leaves the window
    limiter.pause(10)
    async with limiter.slot():
        pass
    assert waits[-1] == 10
