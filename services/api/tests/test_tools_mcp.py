"""The tools over real MCP: the SDK's own client against the app's /mcp endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import httpx2
import pytest
from asgi_lifespan import LifespanManager
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db.models import User
from playlog.testing.history import add_listens, add_track
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings
from playlog_api.tools.mcp import security
from playlog_api.tools.registry import tools


@asynccontextmanager
async def mcp_client(
    settings: ApiSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    headers: dict[str, str],
) -> AsyncIterator[Client]:
    async with LifespanManager(create_app(settings, sessionmaker=sessionmaker)) as manager:
        http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=manager.app), headers=headers)
        async with (
            http,
            Client(streamable_http_client("http://testserver/mcp", http_client=http)) as client,
        ):
            yield client


# Arguments a tool cannot do without, and windows that hold the test's plays (March 2026).
CALL_ARGS: dict[str, dict[str, object]] = {
    "history_search": {"query": "hopp"},
    "history_compare_periods": {
        "a_start": "2026-03-01",
        "a_end": "2026-03-31",
        "b_start": "2026-02-01",
        "b_end": "2026-02-28",
    },
    "history_year_in_review": {"year": 2026},
    "spotify_search": {"query": "hopp"},
}
# What each history tool's answer must show of those plays: the track (or its artist or
# album), or, for tools without names, a figure.
SEEN: dict[str, Callable[[dict[str, Any]], bool]] = {
    "history_listening_heatmap": lambda answer: sum(answer["heatmap"]["by_hour"]) == 2,
    "history_coverage": lambda answer: answer["coverage"]["active_days"] == 2,
    "history_podcasts": lambda answer: answer["totals"]["episodes"] == 1,
    "history_skips": lambda answer: (answer["rows"], answer["skips"]) == (3, 1),
    "history_repeat_rate": lambda answer: (answer["plays"], answer["unique_tracks"]) == (1, 1),
}


def _names_the_artist(answer: dict[str, Any]) -> bool:
    return "Sigur Rós" in json.dumps(answer, ensure_ascii=False)


async def test_the_sdk_client_lists_and_calls_every_tool(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    db_session: AsyncSession,
    listener: User,
    personal: dict[str, str],
) -> None:
    song = await add_track(db_session, "Hoppípolla", "Sigur Rós", album="Takk...")
    await add_listens(db_session, listener.id, song, datetime(2026, 3, 1, 20, tzinfo=UTC))
    await add_listens(
        db_session, listener.id, song, datetime(2026, 3, 2, 20, tzinfo=UTC), ms_played=3_000
    )
    episode = await add_track(db_session, "Episode 1", kind="episode", show="A Show")
    await add_listens(db_session, listener.id, episode, datetime(2026, 3, 2, 21, tzinfo=UTC))
    async with mcp_client(api_settings, db_sessionmaker, personal) as client:
        listed = await client.list_tools()
        by_name = {entry.name: entry for entry in listed.tools}
        assert sorted(by_name) == sorted(entry.name for entry in tools())
        for entry in listed.tools:
            assert entry.input_schema["type"] == "object"
            assert "user_id" in entry.input_schema["properties"]
            assert entry.output_schema is not None
            assert entry.description

        result = await client.call_tool(
            "history_top_tracks", {"start": "2026-03-01", "end": "2026-03-31", "limit": 5}
        )
        assert not result.is_error
        assert result.structured_content is not None
        tracks = result.structured_content["tracks"]
        assert [(t["name"], t["artist"], t["plays"]) for t in tracks] == [
            ("Hoppípolla", "Sigur Rós", 1)
        ]

        # Every other tool answers through the SDK with content its output model accepts;
        # the Spotify tools refuse a user who never connected Spotify.
        for registered in tools():
            name = registered.name
            args = CALL_ARGS.get(name, {})
            if "days" in registered.input.model_fields and name not in CALL_ARGS:
                args = {"start": "2026-03-01", "end": "2026-03-31"}
            called = await client.call_tool(name, args)
            if name.startswith("spotify_"):
                assert called.is_error, name
                assert "Spotify" in called.content[0].text  # type: ignore[union-attr]
                continue
            assert not called.is_error, (name, called.content)
            answer = called.structured_content
            assert answer is not None
            registered.output.model_validate(answer)
            if name.startswith("history_"):
                assert SEEN.get(name, _names_the_artist)(answer), (name, answer)

        bad = await client.call_tool("history_top_tracks", {"days": 0})
        assert bad.is_error
        assert "days" in bad.content[0].text  # type: ignore[union-attr]
        unknown = await client.call_tool("no_such_tool", {})
        assert unknown.is_error


async def test_mcp_needs_credentials_and_a_known_host(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    personal: dict[str, str],
) -> None:
    app = create_app(api_settings, sessionmaker=db_sessionmaker)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        list_tools = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        accept = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            anonymous = await http.post("/mcp", json=list_tools, headers=accept)
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"].startswith('Bearer realm="playlog"')
            # Exactly /mcp, no redirect to /mcp/.
            answered = await http.post("/mcp", json=list_tools, headers={**accept, **personal})
            assert answered.status_code == 200, answered.text
            assert answered.json()["result"]["tools"]
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
            rebound = await http.post("/mcp", json=list_tools, headers={**accept, **personal})
            assert rebound.status_code == 421


@pytest.mark.parametrize("origin", ["http://evil.example", "https://127.0.0.1.evil.example"])
async def test_mcp_refuses_foreign_origins(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    personal: dict[str, str],
    origin: str,
) -> None:
    app = create_app(api_settings, sessionmaker=db_sessionmaker)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={
                    "Accept": "application/json, text/event-stream",
                    "Origin": origin,
                    **personal,
                },
            )
    assert response.status_code == 403


def test_the_public_host_is_accepted_with_or_without_its_default_port() -> None:
    settings = security("https://playlog.example.com:443")
    assert "playlog.example.com" in settings.allowed_hosts
    assert "playlog.example.com:443" in settings.allowed_hosts
    assert "https://playlog.example.com" in settings.allowed_origins
    custom = security("http://music.example.org:8080")
    assert "music.example.org:8080" in custom.allowed_hosts
    assert "music.example.org" not in custom.allowed_hosts
    assert "evil.example" not in [*settings.allowed_hosts, *custom.allowed_hosts]
