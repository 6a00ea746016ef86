"""The live Spotify tools: top items and catalogue search, against a scripted Spotify
(httpx.MockTransport) and the project's Spotify stand-in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.models import User
from playlog.spotify.stand_in import StandInConfig
from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.spotify.stand_in.state import StandInState
from playlog.testing.factories import add_connected_user, add_user
from playlog.testing.history import add_listens, add_track, token_headers
from playlog.testing.http import asgi_client
from playlog.testing.spotify import sign_in_and_connect
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings

API = "http://spotify/v1"
EMAIL = "ada.lovelace@example.com"
# What add_connected_user stores: neither may ever show in an answer.
SECRETS = ("access-token", "refresh-token", EMAIL)
TRACK_A, TRACK_B = "4uLU6hMCjMI75M1A2tKUQC", "7ouMYWpwJ422jRcDASZB7P"
ARTIST = "0OdUWJ0sBjDrqHygGUXeCF"

Reply = Callable[[httpx.Request], httpx.Response]


class FakeSpotify:
    """Spotify as scripted by a test: a reply per URL path, every request recorded."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.routes.get(request.url.path)
        if reply is None:
            return httpx.Response(404, json={"error": {"status": 404, "message": "Not found"}})
        return reply(request)

    def answer(self, path: str, body: dict[str, Any], status: int = 200, **headers: str) -> None:
        self.routes[path] = lambda _: httpx.Response(status, json=body, headers=headers)


def spotify_settings(api_settings: ApiSettings, client_id: str = "test-app") -> ApiSettings:
    values: dict[str, object] = {
        **dict(api_settings),
        "spotify_client_id": client_id,
        "auth_state_secret": "state-secret-" + "k3y" * 10,
        "spotify_api_base_url": API,
        "spotify_accounts_base_url": "http://spotify",
    }
    return ApiSettings(**values)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def fake() -> FakeSpotify:
    return FakeSpotify()


@pytest_asyncio.fixture
async def live(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    fake: FakeSpotify,
) -> AsyncIterator[httpx.AsyncClient]:
    """The api with a Spotify app configured, talking to ``fake``."""
    app = create_app(
        spotify_settings(api_settings),
        sessionmaker=db_sessionmaker,
        spotify_transport=httpx.MockTransport(fake.handle),
    )
    async with asgi_client(app) as client:
        yield client


@pytest_asyncio.fixture
async def ada(db_session: AsyncSession, encryption_key: str) -> User:
    """A user with a working (stored, decryptable) Spotify grant."""
    user = await add_connected_user(db_session, TokenCipher(encryption_key), "Ada")
    user.email = EMAIL
    await db_session.flush()
    return user


@pytest_asyncio.fixture
async def ada_token(db_session: AsyncSession, ada: User) -> dict[str, str]:
    return await token_headers(db_session, ada.id)


def track_json(track_id: str, name: str, artist: str, album: str) -> dict[str, Any]:
    return {
        "id": track_id,
        "name": name,
        "uri": f"spotify:track:{track_id}",
        "duration_ms": 200_000,
        "popularity": 87,
        "album": {"id": f"al{track_id[2:]}", "name": album, "uri": "spotify:album:x"},
        "artists": [{"id": ARTIST, "name": artist, "uri": f"spotify:artist:{ARTIST}"}],
    }


def paged(items: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    return {"items": items, "total": total or len(items), "limit": 10, "offset": 0, "next": None}


def assert_clean(response: httpx.Response) -> None:
    for secret in SECRETS:
        assert secret not in response.text


async def test_top_tracks_come_compact_from_spotify_with_the_users_token(
    live: httpx.AsyncClient, fake: FakeSpotify, ada_token: dict[str, str]
) -> None:
    items = [
        track_json(TRACK_A, "Song A", "Band", "First"),
        track_json(TRACK_B, "Song B", "Band", "Second"),
    ]
    fake.answer("/v1/me/top/tracks", paged(items, total=42))
    params: dict[str, str | int] = {"entity": "tracks", "time_range": "short_term", "limit": 2}
    response = await live.get("/me/spotify-top", headers=ada_token, params=params)

    assert response.status_code == 200, response.text
    [sent] = fake.requests
    assert sent.headers["authorization"] == "Bearer access-token"
    assert dict(sent.url.params) == {"time_range": "short_term", "limit": "2", "offset": "0"}
    body = response.json()
    assert body["entity"] == "tracks"
    assert body["total"] == 42
    assert body["artists"] == []
    assert body["tracks"] == [
        {
            "id": item["id"],
            "name": item["name"],
            "artists": [{"id": ARTIST, "name": "Band"}],
            "album": {"id": item["album"]["id"], "name": item["album"]["name"]},
            "uri": item["uri"],
        }
        for item in items
    ]
    # Spotify's popularity is not passed on, nor any credential.
    assert "popularity" not in response.text
    assert_clean(response)


async def test_top_artists_through_mcp_call_with_the_defaults(
    live: httpx.AsyncClient, fake: FakeSpotify, ada_token: dict[str, str]
) -> None:
    artist = {"id": ARTIST, "name": "Band", "uri": f"spotify:artist:{ARTIST}", "genres": ["x"]}
    fake.answer("/v1/me/top/artists", paged([artist]))
    response = await live.post(
        "/mcp/call",
        headers=ada_token,
        json={"tool": "spotify.get_top", "args": {"entity": "artists"}},
    )
    assert response.status_code == 200, response.text
    [sent] = fake.requests
    assert sent.url.params["time_range"] == "medium_term"
    assert sent.url.params["limit"] == "10"
    result = response.json()["result"]
    assert result["artists"] == [{"id": ARTIST, "name": "Band", "uri": artist["uri"]}]
    assert result["tracks"] == []
    assert "genres" not in response.text


async def test_search_lists_results_with_the_users_own_plays_of_each_track(
    live: httpx.AsyncClient,
    fake: FakeSpotify,
    db_session: AsyncSession,
    ada: User,
    ada_token: dict[str, str],
) -> None:
    other = await add_user(db_session, "Other", authorized_days_ago=None, checkpoint=None)
    song = await add_track(db_session, "Song A", "Band", track_id=TRACK_A)
    base = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    skip_first = base - timedelta(days=3)
    await add_listens(db_session, ada.id, song, skip_first, ms_played=10_000)
    await add_listens(db_session, ada.id, song, base, base + timedelta(hours=1), ms_played=45_000)
    await add_listens(db_session, ada.id, song, base + timedelta(hours=5), ms_played=30_000)
    # An API play: no ms_played, the database estimates it.
    await add_listens(
        db_session, ada.id, song, base + timedelta(days=2), ms_played=None, source="spotify_api"
    )
    skip_last = base + timedelta(days=9)
    await add_listens(db_session, ada.id, song, skip_last, ms_played=29_999)
    await add_listens(db_session, other.id, song, base, base + timedelta(hours=2))
    raw = (
        await db_session.execute(
            text("SELECT played_at, ms_played, ms_estimated FROM plays WHERE user_id = :u"),
            {"u": ada.id},
        )
    ).all()
    counted = [row for row in raw if row.ms_played is None or row.ms_played >= 30_000]
    listening_ms = sum(row.ms_played or row.ms_estimated or 0 for row in raw)

    fake.answer(
        "/v1/search",
        {
            "tracks": paged(
                [
                    track_json(TRACK_A, "Song A", "Band", "First"),
                    track_json(TRACK_B, "Song B", "Band", "Second"),
                ]
            ),
            "artists": paged([{"id": ARTIST, "name": "Band", "uri": "spotify:artist:b"}]),
        },
    )
    response = await live.get(
        "/me/spotify-search",
        headers=ada_token,
        params=[("query", "  song  "), ("types", "track"), ("types", "artist"), ("limit", "3")],
    )

    assert response.status_code == 200, response.text
    [sent] = fake.requests
    assert dict(sent.url.params) == {"q": "song", "type": "track,artist", "limit": "3"}
    body = response.json()
    assert body["query"] == "song"
    assert [t["id"] for t in body["tracks"]] == [TRACK_A, TRACK_B]
    assert body["tracks"][0]["in_history"] == {
        "plays": len(counted),
        "skips": len(raw) - len(counted),
        "hours": round(listening_ms / 3_600_000, 2),
        "first_played_at": min(r.played_at for r in counted).isoformat().replace("+00:00", "Z"),
        "last_played_at": max(r.played_at for r in counted).isoformat().replace("+00:00", "Z"),
    }
    assert len(counted) == 4
    assert body["tracks"][1]["in_history"] is None
    assert body["artists"] == [{"id": ARTIST, "name": "Band", "uri": "spotify:artist:b"}]
    assert body["albums"] == []
    assert_clean(response)


async def test_search_types_may_be_comma_separated_and_repeat(
    live: httpx.AsyncClient, fake: FakeSpotify, ada_token: dict[str, str]
) -> None:
    fake.answer("/v1/search", {"tracks": paged([]), "albums": paged([])})
    response = await live.post(
        "/mcp/call",
        headers=ada_token,
        json={
            "tool": "spotify_search",
            "args": {"query": "x", "types": ["track,album", "track", "album,track"]},
        },
    )
    assert response.status_code == 200, response.text
    assert fake.requests[0].url.params["type"] == "track,album"
    assert fake.requests[0].url.params["limit"] == "5"


async def test_a_rate_limit_is_a_429_with_retry_after(
    live: httpx.AsyncClient, fake: FakeSpotify, ada_token: dict[str, str]
) -> None:
    fake.answer("/v1/me/top/tracks", {"error": {"status": 429}}, 429, **{"Retry-After": "120"})
    response = await live.get("/me/spotify-top", headers=ada_token)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "120"
    assert response.json()["error"]["code"] == "rate_limited"
    assert "try again in 120 s" in response.json()["error"]["message"]
    assert_clean(response)
    # The same answer through /mcp/call, header and all.
    called = await live.post(
        "/mcp/call", headers=ada_token, json={"tool": "spotify_get_top", "args": {}}
    )
    assert called.status_code == 429
    assert called.headers["retry-after"] == "120"
    assert called.json()["error"]["code"] == "rate_limited"


async def test_a_user_marked_needs_reauth_is_told_to_reconnect(
    live: httpx.AsyncClient, fake: FakeSpotify, db_session: AsyncSession
) -> None:
    user = await add_user(db_session, "Revoked", connection="needs_reauth")
    headers = await token_headers(db_session, user.id)
    for path in ("/me/spotify-top", "/me/spotify-search?query=x"):
        response = await live.get(path, headers=headers)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "spotify_reauth_required"
        assert "reconnect Spotify" in response.json()["error"]["message"]
    assert fake.requests == []


async def test_a_refresh_token_spotify_rejects_asks_for_reconnection(
    live: httpx.AsyncClient, fake: FakeSpotify, ada_token: dict[str, str]
) -> None:
    fake.answer("/v1/me/top/tracks", {"error": {"status": 401, "message": "expired"}}, 401)
    fake.answer(
        "/api/token",
        {"error": "invalid_grant", "error_description": "Refresh token revoked"},
        400,
    )
    response = await live.get("/me/spotify-top", headers=ada_token)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "spotify_reauth_required"
    assert "reconnect Spotify" in response.json()["error"]["message"]
    assert [r.url.path for r in fake.requests] == ["/v1/me/top/tracks", "/api/token"]
    assert b"refresh-token" in fake.requests[1].content  # sent to Spotify, never shown
    assert_clean(response)


async def test_other_spotify_refusals_are_a_502(
    live: httpx.AsyncClient, fake: FakeSpotify, ada_token: dict[str, str]
) -> None:
    fake.answer("/v1/me/top/artists", {"error": {"status": 403, "message": "Forbidden"}}, 403)
    response = await live.get("/me/spotify-top", headers=ada_token, params={"entity": "artists"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_gateway"
    assert response.json()["error"]["message"] == "Spotify refused the call: Spotify 403: Forbidden"
    assert_clean(response)
    # What Spotify wrote is redacted and cut short.
    chatty = f"Bearer BQD-secret-value for plg_{'A' * 40} ada@example.org " + "x" * 500
    fake.answer("/v1/me/top/artists", {"error": {"status": 400, "message": chatty}}, 400)
    response = await live.get("/me/spotify-top", headers=ada_token, params={"entity": "artists"})
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert message.startswith("Spotify refused the call: Spotify 400: Bearer [redacted] for ")
    assert "BQD-secret" not in message
    assert "plg_" not in message
    assert "ada@example.org" not in message
    assert "[email]" in message
    assert len(message) == len("Spotify refused the call: ") + 200
    assert message.endswith("…")


async def test_without_a_spotify_app_the_tools_are_503(
    client: httpx.AsyncClient, personal: dict[str, str]
) -> None:
    for path in ("/me/spotify-top", "/me/spotify-search?query=x"):
        response = await client.get(path, headers=personal)
        assert response.status_code == 503
        assert response.json()["error"]["message"] == "Spotify is not configured on this server"


async def test_a_user_who_never_connected_gets_a_409(
    live: httpx.AsyncClient, fake: FakeSpotify, personal: dict[str, str]
) -> None:
    response = await live.get("/me/spotify-search", headers=personal, params={"query": "x"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "spotify_not_connected"
    assert "connect Spotify" in response.json()["error"]["message"]
    assert fake.requests == []


async def test_bad_arguments_are_a_422_before_spotify_is_called(
    live: httpx.AsyncClient, fake: FakeSpotify, ada_token: dict[str, str]
) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("spotify_search", {}, "query"),
        ("spotify_search", {"query": ""}, "query"),
        ("spotify_search", {"query": "   "}, "query"),
        ("spotify_search", {"query": "x" * 201}, "query"),
        ("spotify_search", {"query": "x", "limit": 11}, "limit"),
        ("spotify_search", {"query": "x", "limit": 0}, "limit"),
        ("spotify_search", {"query": "x", "types": []}, "types"),
        ("spotify_search", {"query": "x", "types": [","]}, "types"),
        ("spotify_search", {"query": "x", "types": ["playlist"]}, "types"),
        ("spotify_search", {"query": "x", "market": "DE"}, "unknown argument market"),
        ("spotify_get_top", {"limit": 51}, "limit"),
        ("spotify_get_top", {"time_range": "all_time"}, "time_range"),
        ("spotify_get_top", {"entity": "albums"}, "entity"),
    ]
    for name, args, expected in cases:
        response = await live.post(
            "/mcp/call", headers=ada_token, json={"tool": name, "args": args}
        )
        assert response.status_code == 422, (name, args, response.text)
        assert expected in response.json()["error"]["message"], (name, args, response.text)
    rest_cases: list[dict[str, str | int]] = [
        {"query": ""},
        {"query": "x" * 201},
        {"query": "x", "limit": 11},
    ]
    for params in rest_cases:
        rest = await live.get("/me/spotify-search", headers=ada_token, params=params)
        assert rest.status_code == 422, (params, rest.text)
    assert fake.requests == []


async def test_against_the_stand_in(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    db_session: AsyncSession,
    encryption_key: str,
) -> None:
    config = StandInConfig(enable_control=True)
    stand_in = create_stand_in_app(config)
    state: StandInState = stand_in.state.stand_in
    transport = httpx.ASGITransport(app=stand_in)
    settings = spotify_settings(api_settings, client_id=config.client_id)
    app = create_app(settings, sessionmaker=db_sessionmaker, spotify_transport=transport)
    async with (
        asgi_client(app) as api,
        httpx.AsyncClient(transport=transport, base_url="http://spotify") as spotify,
    ):
        user_id: uuid.UUID = await sign_in_and_connect(
            spotify, config, "demo-listener", db_sessionmaker, TokenCipher(encryption_key)
        )
        headers = await token_headers(db_session, user_id)
        artist = state.catalog.artists[10]
        query = artist.name.lower()
        expected = [
            t
            for t in state.catalog.tracks
            if query in t.name.lower() or any(query in a.name.lower() for a in t.artists)
        ][:10]
        heard = expected[0]
        stored = await add_track(db_session, heard.name, artist.name, track_id=heard.id)
        await add_listens(db_session, user_id, stored, datetime(2026, 1, 5, 20, tzinfo=UTC))

        search = await api.get(
            "/me/spotify-search",
            headers=headers,
            params=[("query", artist.name), ("types", "track"), ("types", "artist"), ("limit", 10)],
        )
        assert search.status_code == 200, search.text
        body = search.json()
        assert [t["id"] for t in body["tracks"]] == [t.id for t in expected]
        assert [t["in_history"] is not None for t in body["tracks"]] == [
            t.id == heard.id for t in expected
        ]
        assert body["tracks"][0]["in_history"]["plays"] == 1
        assert artist.id in [a["id"] for a in body["artists"]]

        top = await api.get(
            "/me/spotify-top", headers=headers, params={"entity": "artists", "limit": 5}
        )
        assert top.status_code == 200, top.text
        ranked = top.json()["artists"]
        assert 1 <= len(ranked) <= 5
        assert {a["id"] for a in ranked} <= set(state.catalog.artists_by_id)
