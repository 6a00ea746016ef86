"""Tools that ask two questions at once (``Sessions.both``): a second session on a
connection of its own, and the same answers as asking in turn.

Other tool tests bind every session to the test's one connection, where the two run in
turn; these use committed rows, which a second connection can see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.db.engine import create_sessionmaker
from playlog.testing.exports import delete_users_and_their_catalog
from playlog.testing.factories import add_user
from playlog.testing.history import add_listens, add_track, token_headers
from playlog.testing.http import asgi_client
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings
from playlog_api.tools.registry import (
    STATEMENT_TIMEOUT_MS,
    Sessions,
    aside_permits,
    prepare_tool_session,
)

# The tools that ask two questions at once, with arguments that give each part rows.
TOOLS = {
    "history_compare_periods": {"a_start": "2026-03-08", "a_end": "2026-03-14",
                                "b_start": "2026-03-01", "b_end": "2026-03-07"},
    "history_skips": {"start": "2026-03-01", "end": "2026-03-14"},
    "history_repeat_rate": {"start": "2026-03-01", "end": "2026-03-14"},
    "history_taste_summary": {"start": "2026-03-01", "end": "2026-03-14"},
}  # fmt: skip


# What a tool's transaction is set to (prepare_tool_session), on every session of it.
TOOL_SETTINGS = (f"{STATEMENT_TIMEOUT_MS // 1000}s", "force_custom_plan", "off")


async def backend(session: AsyncSession) -> tuple[int, tuple[str, ...]]:
    row = (
        await session.execute(
            text(
                "SELECT pg_backend_pid(), current_setting('statement_timeout'),"
                " current_setting('plan_cache_mode'), current_setting('jit')"
            )
        )
    ).one()
    return int(row[0]), tuple(row[1:])


async def test_the_second_question_runs_alongside_on_its_own_connection(
    db_engine: AsyncEngine,
) -> None:
    sessionmaker = create_sessionmaker(db_engine)
    permits = aside_permits(sessionmaker)
    assert permits is not None
    second_started = asyncio.Event()

    async def first(session: AsyncSession) -> tuple[int, tuple[str, ...]]:
        # Waits for the second to start: asked in turn, this would never end.
        await asyncio.wait_for(second_started.wait(), timeout=30)
        return await backend(session)

    async def second(session: AsyncSession) -> tuple[int, tuple[str, ...]]:
        second_started.set()
        return await backend(session)

    async with sessionmaker() as session, session.begin():
        await prepare_tool_session(session)
        a, b = await Sessions(session, sessionmaker, permits).both(first, second)
    assert a[0] != b[0]
    assert a[1] == b[1] == TOOL_SETTINGS
    assert not permits.locked()  # the permit is back


async def test_without_a_free_permit_the_two_ask_in_turn(db_engine: AsyncEngine) -> None:
    # Every permit taken: a call holding a connection never waits for a second one (were
    # all connections held by calls waiting for another, none would ever get it).
    sessionmaker = create_sessionmaker(db_engine)
    permits = asyncio.Semaphore(1)
    await permits.acquire()
    async with sessionmaker() as session, session.begin():
        a, b = await Sessions(session, sessionmaker, permits).both(backend, backend)
    assert a[0] == b[0]
    assert permits.locked()


async def test_a_failing_first_question_cancels_the_second(db_engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(db_engine)
    permits = aside_permits(sessionmaker)
    assert permits is not None
    second_running = asyncio.Event()
    ended: list[str] = []

    async def first(session: AsyncSession) -> None:
        await asyncio.wait_for(second_running.wait(), timeout=30)
        raise ValueError("the first failed")

    async def second(session: AsyncSession) -> None:
        try:
            second_running.set()
            await session.execute(text("SELECT pg_sleep(60)"))
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    async with sessionmaker() as session, session.begin():
        with pytest.raises(ValueError, match="the first failed"):
            await Sessions(session, sessionmaker, permits).both(first, second)
    assert ended == ["cancelled"]
    assert not permits.locked()


async def test_a_failing_second_question_is_raised_as_is(db_engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(db_engine)

    async def second(session: AsyncSession) -> None:
        await session.execute(text("SELECT 1 / 0"))

    permits = aside_permits(sessionmaker)
    assert permits is not None
    async with sessionmaker() as session, session.begin():
        with pytest.raises(Exception, match="division by zero"):
            await Sessions(session, sessionmaker, permits).both(backend, second)
    assert not permits.locked()  # given back after the failure too


async def test_sessions_of_one_connection_ask_in_turn(
    db_session: AsyncSession, db_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    order: list[str] = []

    async def first(session: AsyncSession) -> tuple[int, tuple[str, ...]]:
        order.append("first")
        return await backend(session)

    async def second(session: AsyncSession) -> tuple[int, tuple[str, ...]]:
        order.append("second")
        return await backend(session)

    permits = aside_permits(db_sessionmaker)
    assert permits is None
    a, b = await Sessions(db_session, db_sessionmaker, permits).both(first, second)
    assert (order, a) == (["first", "second"], b)


@pytest_asyncio.fixture
async def committed(db_engine: AsyncEngine) -> AsyncIterator[dict[str, str]]:
    """A committed user with two weeks of plays, skips and repeats; their token headers."""
    sessionmaker = create_sessionmaker(db_engine)
    async with sessionmaker() as session, session.begin():
        user = await add_user(session, "Both", authorized_days_ago=None, checkpoint=None)
        user.timezone = "Europe/Berlin"
        tracks = [
            await add_track(session, f"Song {n}", f"Artist {n % 3}", album=f"Album {n % 2}")
            for n in range(6)
        ]
        start = datetime(2026, 3, 1, 8, tzinfo=UTC)
        for day in range(14):
            for n, track in enumerate(tracks[: 2 + day % 5]):
                at = start + timedelta(days=day, minutes=10 * n)
                await add_listens(session, user.id, track, at, ms_played=(n + 1) * 20_000)
            # The same track twice in a row: a back-to-back repeat.
            later = start + timedelta(days=day, hours=5)
            await add_listens(session, user.id, tracks[0], later, later + timedelta(minutes=4))
        headers = await token_headers(session, user.id)
        user_id = user.id
    yield headers
    await delete_users_and_their_catalog(db_engine, [user_id])


async def answers(
    settings: ApiSettings, sessionmaker: async_sessionmaker[AsyncSession], headers: dict[str, str]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    async with asgi_client(create_app(settings, sessionmaker=sessionmaker)) as client:
        for tool, args in TOOLS.items():
            response = await client.post(
                "/mcp/call", headers=headers, json={"tool": tool, "args": args}
            )
            body = response.json()
            assert body["success"], body
            found[tool] = body["result"]
    return found


async def test_tools_answer_alike_side_by_side_and_in_turn(
    api_settings: ApiSettings, db_engine: AsyncEngine, committed: dict[str, str]
) -> None:
    side_by_side = await answers(api_settings, create_sessionmaker(db_engine), committed)
    async with db_engine.connect() as connection:
        in_turn = await answers(
            api_settings, async_sessionmaker(bind=connection, expire_on_commit=False), committed
        )
    assert side_by_side == in_turn
    # Each answer has rows in both of its parts (a test of empty answers proves little).
    compare = side_by_side["history_compare_periods"]
    assert compare["a"]["plays"] > 0
    assert compare["b"]["plays"] > 0
    skips = side_by_side["history_skips"]
    assert skips["tracks"]
    assert sum(hour["rows"] for hour in skips["by_hour"]) > 0
    repeat = side_by_side["history_repeat_rate"]
    assert repeat["consecutive_repeats"] > 0
    assert repeat["most_repeated"]
    summary = side_by_side["history_taste_summary"]
    assert summary["top_artists"]
    assert summary["plays"] > 0
