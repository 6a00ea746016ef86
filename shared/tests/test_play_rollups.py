"""The running totals kept by triggers on ``plays`` (migrations 0004 to 0008) always
equal the totals computed from the plays themselves, whatever writes them, in hour
buckets that start where the user's local hours start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from playlog.db.models import Play, User
from playlog.exports.importer import import_export
from playlog.settings import ImportSettings
from playlog.testing.exports import (
    delete_users_and_their_catalog,
    extended_member,
    track_play,
    write_zip,
)
from playlog.testing.factories import add_user
from playlog.testing.history import add_listens, add_track
from playlog.users import set_timezone

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)

# The user's hours start hour_start_minute past each UTC hour: shift, truncate, shift back.
HOURS_FROM_PLAYS = """
    SELECT p.user_id, date_trunc('hour', p.played_at - m.shift, 'UTC') + m.shift AS hour,
        count(*) AS rows,
        count(*) FILTER (WHERE ms_played IS NULL OR ms_played >= 30000) AS plays,
        sum(coalesce(ms_played, ms_estimated, 0)) AS listening_ms,
        coalesce(sum(ms_estimated) FILTER (WHERE ms_played IS NULL), 0) AS estimated_ms,
        count(*) FILTER (WHERE p.source = 'spotify_api') AS api_rows
    FROM plays p JOIN (SELECT id, make_interval(mins => hour_start_minute) AS shift
                       FROM users) m ON m.id = p.user_id
    WHERE p.user_id = ANY(:users) GROUP BY 1, 2 ORDER BY 1, 2"""
HOURS_KEPT = """
    SELECT user_id, hour, rows, plays, listening_ms, estimated_ms, api_rows
    FROM play_hours WHERE user_id = ANY(:users) ORDER BY 1, 2"""
TRACKS_FROM_PLAYS = """
    SELECT user_id, track_id, count(*), count(*) FILTER (WHERE ms_played IS NULL
        OR ms_played >= 30000), sum(coalesce(ms_played, ms_estimated, 0)),
        min(played_at) FILTER (WHERE ms_played IS NULL OR ms_played >= 30000),
        max(played_at) FILTER (WHERE ms_played IS NULL OR ms_played >= 30000)
    FROM plays WHERE user_id = ANY(:users) GROUP BY 1, 2 ORDER BY 1, 2"""
TRACKS_KEPT = """
    SELECT user_id, track_id, rows, plays, listening_ms, first_played_at, last_played_at
    FROM play_tracks WHERE user_id = ANY(:users) ORDER BY 1, 2"""


async def _rows(session: AsyncSession, sql: str, users: list[User]) -> list[tuple[Any, ...]]:
    result = await session.execute(text(sql), {"users": [user.id for user in users]})
    return [tuple(row) for row in result.all()]


async def _assert_in_step(session: AsyncSession, *users: User) -> None:
    hours = await _rows(session, HOURS_KEPT, list(users))
    assert hours == await _rows(session, HOURS_FROM_PLAYS, list(users))
    tracks = await _rows(session, TRACKS_KEPT, list(users))
    assert tracks == await _rows(session, TRACKS_FROM_PLAYS, list(users))


async def _listener(session: AsyncSession, name: str) -> User:
    return await add_user(session, name, authorized_days_ago=None, checkpoint=None)


async def test_totals_follow_inserts_and_deletes(db_session: AsyncSession) -> None:
    ada, bob = await _listener(db_session, "Ada"), await _listener(db_session, "Bob")
    song = await add_track(db_session, "Song", "Artist", duration_ms=240_000)
    other = await add_track(db_session, "Other", "Artist")
    minutes = [T0 + timedelta(minutes=m) for m in range(0, 200, 7)]
    await add_listens(db_session, ada.id, song, *minutes[:10], ms_played=200_000)
    await add_listens(db_session, ada.id, song, *minutes[10:15], ms_played=12_000)
    await add_listens(
        db_session, ada.id, other, *minutes[15:20], ms_played=None, source="spotify_api"
    )
    await add_listens(db_session, bob.id, song, *minutes[:3], ms_played=45_000)
    await _assert_in_step(db_session, ada, bob)
    kept = await db_session.scalar(
        text("SELECT sum(rows) FROM play_hours WHERE user_id = :u"), {"u": ada.id}
    )
    assert kept == 20

    # Deleting the first and the last counted play moves the track's bounds.
    await db_session.execute(
        delete(Play).where(
            Play.user_id == ada.id,
            Play.track_id == song.track_id,
            Play.played_at.in_([minutes[0], minutes[9]]),
        )
    )
    await _assert_in_step(db_session, ada, bob)
    first, last = (
        await db_session.execute(
            text(
                "SELECT first_played_at, last_played_at FROM play_tracks"
                " WHERE user_id = :u AND track_id = :t"
            ),
            {"u": ada.id, "t": song.track_id},
        )
    ).one()
    assert (first, last) == (minutes[1], minutes[8])

    # A track left with skips only keeps its row, without first or last play.
    await db_session.execute(
        delete(Play).where(
            Play.user_id == ada.id,
            Play.track_id == song.track_id,
            Play.played_at.in_(minutes[1:9]),
        )
    )
    await _assert_in_step(db_session, ada, bob)
    bounds = await db_session.execute(
        text(
            "SELECT rows, first_played_at, last_played_at FROM play_tracks"
            " WHERE user_id = :u AND track_id = :t"
        ),
        {"u": ada.id, "t": song.track_id},
    )
    assert bounds.one() == (5, None, None)

    # Deleting every play of a track removes its totals row, and emptied hours go too.
    await db_session.execute(delete(Play).where(Play.user_id == ada.id))
    await _assert_in_step(db_session, ada, bob)
    assert await _rows(db_session, HOURS_KEPT, [ada]) == []
    assert len(await _rows(db_session, HOURS_KEPT, [bob])) > 0


async def test_api_plays_get_an_estimated_listening_time(db_session: AsyncSession) -> None:
    ada = await _listener(db_session, "Ada")
    long = await add_track(db_session, "Long", "A", duration_ms=600_000)
    short = await add_track(db_session, "Short", "A", duration_ms=100_000)
    unknown = await add_track(db_session, "Unknown length", "A", duration_ms=None)
    await add_listens(db_session, ada.id, long, T0, ms_played=None, source="spotify_api")
    # Ended 3 minutes after the previous play ended: it played at most 3 minutes.
    await add_listens(
        db_session, ada.id, long, T0 + timedelta(minutes=3), ms_played=None, source="spotify_api"
    )
    await add_listens(
        db_session, ada.id, short, T0 + timedelta(hours=1), ms_played=None, source="spotify_api"
    )
    await add_listens(
        db_session, ada.id, unknown, T0 + timedelta(hours=2), ms_played=None, source="spotify_api"
    )
    await add_listens(db_session, ada.id, short, T0 + timedelta(hours=3), ms_played=5_000)
    estimates = (
        (
            await db_session.execute(
                text("SELECT ms_estimated FROM plays WHERE user_id = :u ORDER BY played_at"),
                {"u": ada.id},
            )
        )
        .scalars()
        .all()
    )
    # No previous play: the duration; then the gap; capped by the duration; unknown
    # duration: no estimate; known ms_played: no estimate.
    assert estimates == [600_000, 180_000, 100_000, None, None]
    await _assert_in_step(db_session, ada)
    estimated = await db_session.scalar(
        text("SELECT sum(estimated_ms) FROM play_hours WHERE user_id = :u"), {"u": ada.id}
    )
    assert estimated == 880_000


async def test_updating_counted_columns_is_refused(db_session: AsyncSession) -> None:
    ada = await _listener(db_session, "Ada")
    song = await add_track(db_session, "Song", "Artist")
    await add_listens(db_session, ada.id, song, T0)
    with pytest.raises(DBAPIError, match="insert-only"):
        async with db_session.begin_nested():
            await db_session.execute(update(Play).where(Play.user_id == ada.id).values(ms_played=1))
    # Columns that no total depends on may still change.
    await db_session.execute(
        update(Play).where(Play.user_id == ada.id).values(context_uri="spotify:playlist:x")
    )
    await _assert_in_step(db_session, ada)


async def _hour_minutes(session: AsyncSession, user: User) -> set[int]:
    result = await session.scalars(
        text("SELECT DISTINCT extract(minute FROM hour)::int FROM play_hours WHERE user_id = :u"),
        {"u": user.id},
    )
    return set(result.all())


async def _row_versions(session: AsyncSession, user: User) -> list[tuple[Any, ...]]:
    """The hour rows of ``user`` with where they are stored: a rewritten row moves, also
    within the test's one transaction (where it would keep its xmin)."""
    return await _rows(
        session,
        "SELECT hour, ctid::text FROM play_hours WHERE user_id = ANY(:users) ORDER BY 1",
        [user],
    )


async def test_hour_totals_start_where_the_users_hours_start(db_session: AsyncSession) -> None:
    ada, bob = await _listener(db_session, "Ada"), await _listener(db_session, "Bob")
    set_timezone(ada, "Asia/Kolkata")  # +05:30: local hours start at minute 30 of UTC's
    await db_session.flush()
    song = await add_track(db_session, "Song", "Artist", duration_ms=240_000)
    at = [T0 + timedelta(minutes=m) for m in range(0, 600, 11)]
    await add_listens(db_session, ada.id, song, *at[:30], ms_played=200_000)
    await add_listens(db_session, ada.id, song, *at[30:], ms_played=None, source="spotify_api")
    await add_listens(db_session, bob.id, song, *at[:20], ms_played=10_000)
    await _assert_in_step(db_session, ada, bob)
    assert await _hour_minutes(db_session, ada) == {30}
    assert await _hour_minutes(db_session, bob) == {0}

    # Moving to another zone rebuilds the user's hours in its buckets, and only theirs.
    bobs = await _row_versions(db_session, bob)
    for zone, minute in (("Asia/Kathmandu", 15), ("Europe/Berlin", 0), ("Asia/Kolkata", 30)):
        set_timezone(ada, zone)
        await db_session.flush()
        await _assert_in_step(db_session, ada, bob)
        assert await _hour_minutes(db_session, ada) == {minute}
    assert await _row_versions(db_session, bob) == bobs
    # Setting the same minute again (St John's starts hours at 30 too) rewrites nothing.
    adas = await _row_versions(db_session, ada)
    await db_session.execute(
        update(User)
        .where(User.id == ada.id)
        .values(timezone="America/St_Johns", hour_start_minute=30)
    )
    assert await _row_versions(db_session, ada) == adas

    await db_session.execute(
        delete(Play).where(Play.user_id == ada.id, Play.played_at.in_(at[::3]))
    )
    await _assert_in_step(db_session, ada, bob)
    with pytest.raises(DBAPIError, match="ck_users_hour_start_minute_valid"):
        async with db_session.begin_nested():
            await db_session.execute(
                update(User).where(User.id == ada.id).values(hour_start_minute=20)
            )


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu"])
async def test_deleting_a_user_removes_their_totals(db_session: AsyncSession, zone: str) -> None:
    ada, bob = await _listener(db_session, "Ada"), await _listener(db_session, "Bob")
    set_timezone(ada, zone)
    await db_session.flush()
    song = await add_track(db_session, "Song", "Artist")
    await add_listens(db_session, ada.id, song, T0, T0 + timedelta(hours=5))
    await add_listens(db_session, bob.id, song, T0)
    await db_session.delete(ada)
    await db_session.flush()
    for table in ("play_hours", "play_tracks"):
        left = await db_session.scalar(
            text(f"SELECT count(*) FROM {table} WHERE user_id = :u"),  # noqa: S608 - constant
            {"u": ada.id},
        )
        assert left == 0
    await _assert_in_step(db_session, bob)


async def test_an_import_that_replaces_polled_rows_keeps_totals_in_step(
    db_engine: AsyncEngine, tmp_path: Path
) -> None:
    async with db_engine.begin() as connection:
        user_id = (
            await connection.execute(
                text("INSERT INTO users (display_name) VALUES ('rollups') RETURNING id")
            )
        ).scalar_one()
    try:
        track = "4uLU6hMCjMI75M1A2tKUQC"
        async with db_engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO tracks (track_id, name, source, duration_ms)"
                    " VALUES (:t, 'Song', 'spotify_api', 213000) ON CONFLICT DO NOTHING"
                ),
                {"t": track},
            )
            for played_at in ("2024-06-01T10:00:03Z", "2024-06-01T12:00:00Z"):
                await connection.execute(
                    text(
                        "INSERT INTO plays (user_id, played_at, track_id, source)"
                        " VALUES (:u, :p, :t, 'spotify_api')"
                    ),
                    {"u": user_id, "p": datetime.fromisoformat(played_at), "t": track},
                )
        path = write_zip(
            tmp_path / "e.zip",
            {
                extended_member(): [
                    track_play("2024-06-01T10:00:00Z", track),
                    track_play("2024-06-01T10:04:00Z", track, ms_played=9_000),
                ]
            },
        )
        report = await import_export(db_engine, user_id, path, ImportSettings())
        assert report.replaced == 1
        async with db_engine.connect() as connection:
            session = AsyncSession(bind=connection)
            user = await session.get(User, user_id)
            assert user is not None
            await _assert_in_step(session, user)
            rows, plays = (
                await session.execute(
                    text("SELECT sum(rows), sum(plays) FROM play_tracks WHERE user_id = :u"),
                    {"u": user_id},
                )
            ).one()
            assert (rows, plays) == (3, 2)
            await session.close()
    finally:
        await delete_users_and_their_catalog(db_engine, [user_id])
