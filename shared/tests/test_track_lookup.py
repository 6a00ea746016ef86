"""``track_lookup`` (migrations 0010 and 0011) always equals what the catalog tables say about each
track: kind, names and the primary artist, whatever writes the catalog and in what order."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from playlog.db.engine import create_engine
from playlog.db.migrate import upgrade
from playlog.db.models.catalog import SEARCH_TEXT
from playlog.exports import loader
from playlog.exports.importer import import_export
from playlog.settings import ImportSettings
from playlog.testing.exports import (
    delete_users_and_their_catalog,
    episode_play,
    extended_member,
    track_play,
    write_zip,
)
from playlog.testing.plugin import DatabaseFactory

# The search text is derived with the model's expression: the migration has its own copy.
FROM_CATALOG = f"""
    SELECT *, {SEARCH_TEXT} FROM (
        SELECT t.track_id, t.kind, t.name, t.album_name, t.show_name, a.artist_id,
            a.name AS artist_name
        FROM tracks t
        LEFT JOIN track_artists ta ON ta.track_id = t.track_id AND ta.position = 0
        LEFT JOIN artists a ON a.artist_id = ta.artist_id
        WHERE t.track_id LIKE :prefix) c
    ORDER BY track_id"""  # noqa: S608 - constants only
KEPT = """
    SELECT track_id, kind, name, album_name, show_name, artist_id, artist_name, search_text
    FROM track_lookup WHERE track_id LIKE :prefix ORDER BY track_id"""


async def _lookup(connection: AsyncConnection | AsyncSession, prefix: str) -> list[tuple[Any, ...]]:
    """The kept rows of the tracks whose id starts with ``prefix``, after checking they
    equal the rows derived from the catalog; without the search text."""
    params = {"prefix": f"{prefix}%"}
    kept = [tuple(row) for row in (await connection.execute(text(KEPT), params)).all()]
    derived = [tuple(row) for row in (await connection.execute(text(FROM_CATALOG), params)).all()]
    assert kept == derived
    return [row[:-1] for row in kept]


async def test_the_lookup_follows_every_catalog_write(db_session: AsyncSession) -> None:
    async def run(sql: str) -> list[tuple[Any, ...]]:
        await db_session.execute(text(sql))
        return await _lookup(db_session, "lk-")

    # New tracks (several per statement, as the importer writes them) have no artist yet.
    rows = await run(
        "INSERT INTO tracks (track_id, kind, name, album_name, show_name, source) VALUES"
        " ('lk-1', 'track', 'One', 'First', NULL, 'import_zip'),"
        " ('lk-2', 'track', 'Two', NULL, NULL, 'import_zip'),"
        " ('lk-3', 'episode', 'Ep', NULL, 'Show', 'import_zip')"
    )
    assert rows == [
        ("lk-1", "track", "One", "First", None, None, None),
        ("lk-2", "track", "Two", None, None, None, None),
        ("lk-3", "episode", "Ep", None, "Show", None, None),
    ]
    await db_session.execute(
        text("INSERT INTO artists (artist_id, name) VALUES ('lk-a', 'Ann'), ('lk-b', 'Bea')")
    )
    # Only position 0 is the primary artist.
    rows = await run(
        "INSERT INTO track_artists (track_id, artist_id, position) VALUES"
        " ('lk-1', 'lk-a', 0), ('lk-1', 'lk-b', 1), ('lk-2', 'lk-b', 0)"
    )
    assert [row[5:] for row in rows] == [("lk-a", "Ann"), ("lk-b", "Bea"), (None, None)]
    # One statement may write a track and its link (writable CTEs; the link's trigger
    # may run before the track's row exists).
    rows = await run(
        "WITH t AS (INSERT INTO tracks (track_id, name, source)"
        " VALUES ('lk-4', 'Four', 'import_zip')),"
        " l AS (INSERT INTO track_artists (track_id, artist_id, position)"
        " VALUES ('lk-4', 'lk-a', 0)) SELECT 1"
    )
    assert rows[3][5:] == ("lk-a", "Ann")
    # The collector fills in an album; a track may be renamed or change kind.
    rows = await run(
        "UPDATE tracks SET album_name = 'Second', name = 'Two!', kind = 'audiobook'"
        " WHERE track_id = 'lk-2'"
    )
    assert rows[1][:5] == ("lk-2", "audiobook", "Two!", "Second", None)
    rows = await run("UPDATE artists SET name = 'Ann B.' WHERE artist_id = 'lk-a'")
    assert rows[0][5:] == ("lk-a", "Ann B.")
    # history_search matches the names lowercased, one by one (U+001F between them).
    search_text = await db_session.scalar(
        text("SELECT search_text FROM track_lookup WHERE track_id = 'lk-1'")
    )
    assert search_text == "one\x1ffirst\x1f\x1fann b."
    # Positions moved about: the old primary steps back, the second one moves up.
    rows = await run(
        "UPDATE track_artists SET position = 2 WHERE track_id = 'lk-1' AND position = 0"
    )
    assert rows[0][5:] == (None, None)
    rows = await run(
        "UPDATE track_artists SET position = 0 WHERE track_id = 'lk-1' AND artist_id = 'lk-b'"
    )
    assert rows[0][5:] == ("lk-b", "Bea")
    rows = await run("DELETE FROM track_artists WHERE track_id = 'lk-2'")
    assert rows[1][5:] == (None, None)
    # An artist's removal removes their links, and so their credit.
    rows = await run("DELETE FROM artists WHERE artist_id = 'lk-b'")
    assert [row[5:] for row in rows] == [(None, None)] * 3 + [("lk-a", "Ann B.")]
    rows = await run("DELETE FROM tracks WHERE track_id IN ('lk-1', 'lk-3', 'lk-4')")
    assert [row[0] for row in rows] == ["lk-2"]


async def _lookup_updates(session: AsyncSession) -> int:
    """Row updates of track_lookup in the session's transaction so far."""
    return int(
        await session.scalar(
            text("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'track_lookup'")
        )
    )


async def test_the_importers_catalog_statement_writes_each_lookup_row_once(
    db_session: AsyncSession,
) -> None:
    for create in filter(str.strip, loader._CREATE_STAGING.split(";")):
        await db_session.execute(text(create))
    await db_session.execute(
        text(
            "INSERT INTO import_items (track_id, kind, name, album_name, show_name, uri,"
            " artist_id, artist_name) VALUES"
            " ('lk-1', 'track', 'One', 'First', NULL, NULL, 'lk-a', 'Ann'),"
            " ('lk-2', 'track', 'Two', NULL, NULL, NULL, 'lk-a', 'Ann'),"
            " ('lk-3', 'episode', 'Ep', NULL, 'Show', NULL, NULL, NULL)"
        )
    )
    before = await _lookup_updates(db_session)
    await db_session.execute(text(loader._INSERT_CATALOG))
    assert [row[5:] for row in await _lookup(db_session, "lk-")] == [
        ("lk-a", "Ann"),
        ("lk-a", "Ann"),
        (None, None),
    ]
    assert await _lookup_updates(db_session) == before
    # A link written on its own fills the artist in: one update, which the count sees.
    await db_session.execute(text("INSERT INTO artists (artist_id, name) VALUES ('lk-b', 'Bea')"))
    for sql in (
        "INSERT INTO tracks (track_id, name, source) VALUES ('lk-4', 'Four', 'import_zip')",
        "INSERT INTO track_artists (track_id, artist_id, position) VALUES ('lk-4', 'lk-b', 0)",
    ):
        await db_session.execute(text(sql))
    assert (await _lookup(db_session, "lk-4"))[0][5:] == ("lk-b", "Bea")
    assert await _lookup_updates(db_session) == before + 1


async def test_an_import_fills_the_lookup(db_engine: AsyncEngine, tmp_path: Path) -> None:
    async with db_engine.begin() as connection:
        user_id = (
            await connection.execute(
                text("INSERT INTO users (display_name) VALUES ('lookup') RETURNING id")
            )
        ).scalar_one()
    prefix = f"lk{uuid.uuid4().hex[:8]}"
    try:
        path = write_zip(
            tmp_path / "e.zip",
            {
                extended_member(): [
                    track_play("2024-06-01T10:00:00Z", f"{prefix}a", name="A", artist="Ann"),
                    track_play("2024-06-01T10:05:00Z", f"{prefix}b", name="B", artist="Bea"),
                    episode_play("2024-06-01T11:00:00Z", f"{prefix}e", "Ep", "Show", 60_000),
                ]
            },
        )
        report = await import_export(db_engine, user_id, path, ImportSettings())
        assert report.plays_inserted == 3
        async with db_engine.connect() as connection:
            rows = await _lookup(connection, prefix)
        assert [(row[1], row[2], row[4], row[6]) for row in rows] == [
            ("track", "A", None, "Ann"),
            ("track", "B", None, "Bea"),
            ("episode", "Ep", "Show", None),
        ]
    finally:
        await delete_users_and_their_catalog(db_engine, [user_id])


async def test_the_migration_fills_the_lookup_from_the_catalog(
    database_factory: DatabaseFactory,
) -> None:
    engine = create_engine(await database_factory(), pool_size=1)
    try:
        await upgrade(engine, "0009")
        async with engine.begin() as connection:
            for sql in (
                "INSERT INTO tracks (track_id, kind, name, album_name, show_name, source) VALUES"
                " ('lk-1', 'track', 'One', 'First', NULL, 'import_zip'),"
                " ('lk-2', 'episode', 'Ep', NULL, 'Show', 'import_zip')",
                "INSERT INTO artists (artist_id, name) VALUES ('lk-a', 'Ann'), ('lk-b', 'Bea')",
                "INSERT INTO track_artists (track_id, artist_id, position) VALUES"
                " ('lk-1', 'lk-b', 1), ('lk-1', 'lk-a', 0)",
            ):
                await connection.execute(text(sql))
        await upgrade(engine)
        async with engine.connect() as connection:
            assert await _lookup(connection, "lk-") == [
                ("lk-1", "track", "One", "First", None, "lk-a", "Ann"),
                ("lk-2", "episode", "Ep", None, "Show", None, None),
            ]
    finally:
        await engine.dispose()


async def test_truncating_the_catalog_empties_or_clears_the_lookup(
    database_factory: DatabaseFactory,
) -> None:
    engine = create_engine(await database_factory(), pool_size=1)
    catalog = (
        "INSERT INTO tracks (track_id, name, source) VALUES ('lk-1', 'One', 'import_zip'),"
        " ('lk-2', 'Two', 'import_zip')",
        "INSERT INTO artists (artist_id, name) VALUES ('lk-a', 'Ann')",
        "INSERT INTO track_artists (track_id, artist_id, position) VALUES ('lk-1', 'lk-a', 0)",
    )
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            for sql in catalog:
                await connection.execute(text(sql))
            await connection.execute(text("TRUNCATE artists CASCADE"))
            assert [row[5:] for row in await _lookup(connection, "lk-")] == [(None, None)] * 2
            await connection.execute(text("TRUNCATE tracks CASCADE"))
            assert await _lookup(connection, "lk-") == []
            # The same tracks can be written again.
            for sql in catalog:
                await connection.execute(text(sql))
            assert [row[6] for row in await _lookup(connection, "lk-")] == ["Ann", None]
    finally:
        await engine.dispose()
