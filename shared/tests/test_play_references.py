"""Plays reference users and tracks with the strength of foreign keys, checked once per
statement by triggers (migration 0005): missing references fail, a user's deletion takes
their plays and totals along, referenced tracks cannot be deleted, and concurrent
deletions never leave a play behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from playlog.testing.exports import delete_users_and_their_catalog
from playlog.testing.factories import add_user
from playlog.testing.history import add_listens, add_track

T0 = datetime(2025, 5, 1, 12, tzinfo=UTC)
INSERT_PLAY = (
    "INSERT INTO plays (user_id, played_at, track_id, ms_played, source)"
    " VALUES ($1, $2, $3, 60000, 'import_zip')"
)


async def _count(session: AsyncSession, sql: str, **params: object) -> int:
    return int(await session.scalar(text(sql), params) or 0)


async def test_a_play_of_a_missing_track_or_user_is_refused(db_session: AsyncSession) -> None:
    ada = await add_user(db_session, "Ada", authorized_days_ago=None, checkpoint=None)
    song = await add_track(db_session, "Song", "Artist")
    insert = text(
        "INSERT INTO plays (user_id, played_at, track_id, ms_played, source)"
        " VALUES (:u, :p, :t, 60000, 'import_zip')"
    )
    with pytest.raises(DBAPIError, match="track that does not exist: nowhere") as caught:
        async with db_session.begin_nested():
            await db_session.execute(insert, {"u": ada.id, "p": T0, "t": "nowhere"})
    assert caught.value.orig is not None
    assert getattr(caught.value.orig, "sqlstate", None) == "23503"
    with pytest.raises(DBAPIError, match="user that does not exist"):
        async with db_session.begin_nested():
            await db_session.execute(insert, {"u": uuid.uuid4(), "p": T0, "t": song.track_id})
    # One bad row fails the whole statement; nothing of it is stored.
    with pytest.raises(DBAPIError, match="does not exist"):
        async with db_session.begin_nested():
            await db_session.execute(
                insert,
                [
                    {"u": ada.id, "p": T0, "t": song.track_id},
                    {"u": ada.id, "p": T0 + timedelta(minutes=5), "t": "nowhere"},
                ],
            )
    assert await _count(db_session, "SELECT count(*) FROM plays WHERE user_id = :u", u=ada.id) == 0
    await add_listens(db_session, ada.id, song, T0)
    assert await _count(db_session, "SELECT count(*) FROM plays WHERE user_id = :u", u=ada.id) == 1
    # A track with totals already is not looked up again; the missing one still fails.
    with pytest.raises(DBAPIError, match="track that does not exist: nowhere"):
        async with db_session.begin_nested():
            await db_session.execute(
                insert,
                [
                    {"u": ada.id, "p": T0 + timedelta(hours=1), "t": song.track_id},
                    {"u": ada.id, "p": T0 + timedelta(hours=2), "t": "nowhere"},
                ],
            )
    assert await _count(db_session, "SELECT count(*) FROM plays WHERE user_id = :u", u=ada.id) == 1
    totals = "SELECT rows FROM play_tracks WHERE user_id = :u"
    assert await _count(db_session, totals, u=ada.id) == 1


async def test_deleting_a_user_deletes_their_plays_only(db_session: AsyncSession) -> None:
    ada = await add_user(db_session, "Ada", authorized_days_ago=None, checkpoint=None)
    bob = await add_user(db_session, "Bob", authorized_days_ago=None, checkpoint=None)
    song = await add_track(db_session, "Song", "Artist")
    await add_listens(db_session, ada.id, song, T0, T0 + timedelta(hours=1))
    await add_listens(db_session, bob.id, song, T0)
    await db_session.execute(text("DELETE FROM users WHERE id = :u"), {"u": ada.id})
    for table in ("plays", "play_hours", "play_tracks"):
        sql = f"SELECT count(*) FROM {table} WHERE user_id = :u"  # noqa: S608 - constant
        assert await _count(db_session, sql, u=ada.id) == 0
        assert await _count(db_session, sql, u=bob.id) == 1


async def test_a_track_with_plays_cannot_be_deleted(db_session: AsyncSession) -> None:
    ada = await add_user(db_session, "Ada", authorized_days_ago=None, checkpoint=None)
    played = await add_track(db_session, "Played", "Artist")
    unplayed = await add_track(db_session, "Unplayed", "Artist")
    await add_listens(db_session, ada.id, played, T0)
    delete = text("DELETE FROM tracks WHERE track_id = ANY(:t)")
    with pytest.raises(DBAPIError, match=f"track {played.track_id} is still referenced"):
        async with db_session.begin_nested():
            await db_session.execute(delete, {"t": [played.track_id, unplayed.track_id]})
    await db_session.execute(delete, {"t": [unplayed.track_id]})
    remaining = "SELECT count(*) FROM tracks WHERE track_id = ANY(:t)"
    assert await _count(db_session, remaining, t=[played.track_id, unplayed.track_id]) == 1
    # Once its plays are gone, the track may go too.
    await db_session.execute(text("DELETE FROM plays WHERE user_id = :u"), {"u": ada.id})
    await db_session.execute(delete, {"t": [played.track_id]})
    assert await _count(db_session, remaining, t=[played.track_id]) == 0


async def test_ids_never_change(db_session: AsyncSession) -> None:
    ada = await add_user(db_session, "Ada", authorized_days_ago=None, checkpoint=None)
    song = await add_track(db_session, "Song", "Artist")
    with pytest.raises(DBAPIError, match="the id of a row in tracks never changes"):
        async with db_session.begin_nested():
            await db_session.execute(
                text("UPDATE tracks SET track_id = 'other' WHERE track_id = :t"),
                {"t": song.track_id},
            )
    with pytest.raises(DBAPIError, match="the id of a row in users never changes"):
        async with db_session.begin_nested():
            await db_session.execute(
                text("UPDATE users SET id = :n WHERE id = :u"), {"n": uuid.uuid4(), "u": ada.id}
            )
    # Other columns still change.
    await db_session.execute(
        text("UPDATE tracks SET name = 'Renamed' WHERE track_id = :t"), {"t": song.track_id}
    )


_Pair = tuple[uuid.UUID, str, asyncpg.Connection, asyncpg.Connection]


@asynccontextmanager
async def _writer_and_deleter(engine: AsyncEngine) -> AsyncIterator[_Pair]:
    """A committed user and track, and a writer and a deleter connection to race."""
    track_id = f"ref-{uuid.uuid4().hex[:12]}"
    async with engine.begin() as connection:
        user_id = (
            await connection.execute(
                text("INSERT INTO users (display_name) VALUES ('references') RETURNING id")
            )
        ).scalar_one()
        await connection.execute(
            text("INSERT INTO tracks (track_id, name, source) VALUES (:t, 'Song', 'import_zip')"),
            {"t": track_id},
        )
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    writer, deleter = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        yield user_id, track_id, writer, deleter
    finally:
        await writer.close()
        await deleter.close()
        await delete_users_and_their_catalog(engine, [user_id])


async def _wait_until_blocked(observer: asyncpg.Connection, pid: int) -> None:
    for _ in range(500):
        waiting = await observer.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_a_user_deleted_during_an_insert_takes_the_new_plays_along(
    db_engine: AsyncEngine,
) -> None:
    async with _writer_and_deleter(db_engine) as (user_id, track_id, writer, deleter):
        writing = writer.transaction()
        await writing.start()
        await writer.execute(INSERT_PLAY, user_id, T0, track_id)
        # The delete waits for the writer, which holds the user row like a foreign key.
        deletion = asyncio.create_task(deleter.execute("DELETE FROM users WHERE id = $1", user_id))
        await _wait_until_blocked(writer, deleter.get_server_pid())
        await writing.commit()
        assert await deletion == "DELETE 1"
        left = await writer.fetchval("SELECT count(*) FROM plays WHERE user_id = $1", user_id)
        assert left == 0
        totals = await writer.fetchval(
            "SELECT count(*) FROM play_tracks WHERE user_id = $1", user_id
        )
        assert totals == 0


async def test_an_insert_for_a_user_being_deleted_fails(db_engine: AsyncEngine) -> None:
    async with _writer_and_deleter(db_engine) as (user_id, track_id, writer, deleter):
        deleting = deleter.transaction()
        await deleting.start()
        await deleter.execute("DELETE FROM users WHERE id = $1", user_id)
        insert = asyncio.create_task(writer.execute(INSERT_PLAY, user_id, T0, track_id))
        await _wait_until_blocked(deleter, writer.get_server_pid())
        await deleting.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="user that does not exist"):
            await insert
        assert await writer.fetchval("SELECT count(*) FROM plays WHERE user_id = $1", user_id) == 0


async def _hours_in_step(connection: asyncpg.Connection, user_id: uuid.UUID) -> list[int]:
    """The minutes past the hour of the user's hour totals, after checking that they hold
    every play of the user in buckets of the user's current minute."""
    minute = await connection.fetchval("SELECT hour_start_minute FROM users WHERE id = $1", user_id)
    kept = await connection.fetch(
        "SELECT hour, rows FROM play_hours WHERE user_id = $1 ORDER BY hour", user_id
    )
    played = await connection.fetch(
        "SELECT date_trunc('hour', played_at - make_interval(mins => $2), 'UTC')"
        " + make_interval(mins => $2) AS hour, count(*) AS rows"
        " FROM plays WHERE user_id = $1 GROUP BY 1 ORDER BY 1",
        user_id,
        minute,
    )
    assert [tuple(row) for row in kept] == [tuple(row) for row in played]
    assert sum(row["rows"] for row in kept) > 0
    return sorted({row["hour"].minute for row in kept})


# A write of plays that reads the user's hour start: a new play, or one deleted, with
# the status it must end with.
_WRITES = {
    "insert": (INSERT_PLAY, T0 + timedelta(minutes=10), "INSERT 0 1"),
    "delete": ("DELETE FROM plays WHERE user_id = $1 AND played_at = $2", T0, "DELETE 1"),
}


async def _write(connection: asyncpg.Connection, kind: str, user_id: uuid.UUID, track: str) -> None:
    sql, at, status = _WRITES[kind]
    args = (user_id, at, track) if kind == "insert" else (user_id, at)
    assert await connection.execute(sql, *args) == status


@pytest.mark.parametrize("kind", _WRITES)
async def test_a_zone_change_during_a_write_waits_and_rebuilds_after_it(
    db_engine: AsyncEngine, kind: str
) -> None:
    async with _writer_and_deleter(db_engine) as (user_id, track_id, writer, changer):
        for at in (T0 - timedelta(days=1), T0):
            await writer.execute(INSERT_PLAY, user_id, at, track_id)
        writing = writer.transaction()
        await writing.start()
        await _write(writer, kind, user_id, track_id)
        # The change waits for the writer, then rebuilds with the writer's plays in sight.
        change = asyncio.create_task(
            changer.execute("UPDATE users SET hour_start_minute = 30 WHERE id = $1", user_id)
        )
        await _wait_until_blocked(writer, changer.get_server_pid())
        await writing.commit()
        assert await change == "UPDATE 1"
        assert await _hours_in_step(writer, user_id) == [30]


@pytest.mark.parametrize("kind", _WRITES)
async def test_a_write_during_a_zone_change_waits_and_uses_the_new_buckets(
    db_engine: AsyncEngine, kind: str
) -> None:
    async with _writer_and_deleter(db_engine) as (user_id, track_id, writer, changer):
        for at in (T0 - timedelta(days=1), T0):
            await writer.execute(INSERT_PLAY, user_id, at, track_id)
        changing = changer.transaction()
        await changing.start()
        await changer.execute("UPDATE users SET hour_start_minute = 45 WHERE id = $1", user_id)
        write = asyncio.create_task(_write(writer, kind, user_id, track_id))
        await _wait_until_blocked(changer, writer.get_server_pid())
        await changing.commit()
        await write
        assert await _hours_in_step(writer, user_id) == [45]


async def test_a_track_deleted_during_an_insert_is_refused(db_engine: AsyncEngine) -> None:
    async with _writer_and_deleter(db_engine) as (user_id, track_id, writer, deleter):
        writing = writer.transaction()
        await writing.start()
        await writer.execute(INSERT_PLAY, user_id, T0, track_id)
        # The delete waits for every transaction writing plays, then sees the new play.
        deletion = asyncio.create_task(
            deleter.execute("DELETE FROM tracks WHERE track_id = $1", track_id)
        )
        await _wait_until_blocked(writer, deleter.get_server_pid())
        await writing.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="still referenced"):
            await deletion
        assert await writer.fetchval("SELECT count(*) FROM tracks WHERE track_id = $1", track_id)
