"""The real Alembic migrations, up and down, against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from playlog.db.engine import create_engine
from playlog.db.migrate import current_revision, downgrade, head_revision, upgrade
from playlog.db.models import Base
from playlog.testing.plugin import DatabaseFactory

EXPECTED_TABLES = {
    "users",
    "spotify_tokens",
    "api_tokens",
    "tracks",
    "artists",
    "track_artists",
    "track_lookup",
    "plays",
    "sync_checkpoints",
    "job_runs",
    "import_jobs",
    "coverage_gaps",
    "logs",
    "worker_heartbeats",
    "oauth_states",
    "imported_members",
    "play_hours",
    "play_tracks",
}


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    return {
        "tables": tables,
        "plays_key": inspector.get_pk_constraint("plays")["constrained_columns"]
        if "plays" in tables
        else [],
        "plays_columns": [c["name"] for c in inspector.get_columns("plays")]
        if "plays" in tables
        else [],
        "plays_unique": [u["column_names"] for u in inspector.get_unique_constraints("plays")]
        if "plays" in tables
        else [],
        "plays_checks": {c["name"] for c in inspector.get_check_constraints("plays")}
        if "plays" in tables
        else set(),
        "plays_fks": {
            (fk["referred_table"], fk["options"].get("ondelete"))
            for fk in inspector.get_foreign_keys("plays")
        }
        if "plays" in tables
        else set(),
    }


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_downgrade_upgrade_round_trip(database_factory: DatabaseFactory) -> None:
    engine = create_engine(await database_factory(), pool_size=1)
    try:
        await upgrade(engine)
        async with engine.connect() as connection:
            first = await connection.run_sync(_schema)
            assert await current_revision(connection) == head_revision()
        assert first["tables"] >= EXPECTED_TABLES
        # Whose play of which item ended when: the key, with no surrogate id (0014).
        assert first["plays_key"] == ["user_id", "played_at", "track_id"]
        assert "id" not in first["plays_columns"]
        assert first["plays_unique"] == []
        assert {"ck_plays_source_valid", "ck_plays_ms_played_not_negative"} <= first["plays_checks"]
        # References are checked by statement triggers (migration 0005), not foreign keys.
        assert first["plays_fks"] == set()

        await downgrade(engine, "base")
        async with engine.connect() as connection:
            emptied = await connection.run_sync(_schema)
            assert await current_revision(connection) is None
        assert emptied["tables"] & EXPECTED_TABLES == set()

        await upgrade(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema) == first
    finally:
        await engine.dispose()


def _collations(connection: Connection) -> dict[tuple[str, str], str | None]:
    rows = connection.execute(
        text(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type = 'text'"
        )
    )
    return {(table, column): collation for table, column, collation in rows}


async def test_text_columns_have_the_models_collations(database_url: str) -> None:
    """Autogenerate does not compare collations: ids are in "C" (migration 0013), every
    other text column in the database's default, in the database as in the models."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            stored = await connection.run_sync(_collations)
    finally:
        await engine.dispose()
    modelled = {
        (table.name, column.name): getattr(column.type, "collation", None)
        for table in Base.metadata.tables.values()
        for column in table.columns
        if (table.name, column.name) in stored
    }
    assert modelled == {key: stored[key] for key in modelled}
    ids = {key for key, collation in stored.items() if collation == "C"}
    assert ("plays", "track_id") in ids
    assert ("track_artists", "artist_id") in ids
    assert len(ids) == 8


async def test_migrations_match_the_models(database_url: str) -> None:
    """Autogenerate finds nothing to do: models and migrations describe the same schema."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def _user_and_track_t(connection: AsyncConnection, timezone: str) -> Any:
    """A user in ``timezone`` and a track "t" to give them plays of, at an old revision."""
    await connection.execute(
        text("INSERT INTO tracks (track_id, name, source) VALUES ('t', 'T', 'import_zip')")
    )
    return (
        await connection.execute(
            text("INSERT INTO users (display_name, timezone) VALUES ('old', :tz) RETURNING id"),
            {"tz": timezone},
        )
    ).scalar_one()


async def test_existing_users_get_hours_of_their_zone_and_back(
    database_factory: DatabaseFactory,
) -> None:
    """0006 sets the hour start of users already stored and rebuilds their hour totals;
    its downgrade puts them back in UTC hours."""
    engine = create_engine(await database_factory(), pool_size=1)
    hours = text("SELECT hour, rows FROM play_hours ORDER BY hour")
    try:
        await upgrade(engine, "0005")
        async with engine.begin() as connection:
            user = await _user_and_track_t(connection, "Asia/Kolkata")
            for minute in (10, 40, 50):
                await connection.execute(
                    text(
                        "INSERT INTO plays (user_id, played_at, track_id, source)"
                        " VALUES (:u, :at, 't', 'import_zip')"
                    ),
                    {"u": user, "at": datetime(2026, 1, 1, 12, minute, tzinfo=UTC)},
                )
            assert [tuple(r) for r in await connection.execute(hours)] == [
                (datetime(2026, 1, 1, 12, tzinfo=UTC), 3)
            ]

        await upgrade(engine)
        async with engine.connect() as connection:
            minute = await connection.scalar(text("SELECT hour_start_minute FROM users"))
            assert minute == 30
            assert [tuple(r) for r in await connection.execute(hours)] == [
                (datetime(2026, 1, 1, 11, 30, tzinfo=UTC), 1),
                (datetime(2026, 1, 1, 12, 30, tzinfo=UTC), 2),
            ]

        await downgrade(engine, "0005")
        async with engine.connect() as connection:
            assert [tuple(r) for r in await connection.execute(hours)] == [
                (datetime(2026, 1, 1, 12, tzinfo=UTC), 3)
            ]
    finally:
        await engine.dispose()


async def test_plays_keep_their_rows_across_the_natural_key(
    database_factory: DatabaseFactory,
) -> None:
    """0014 drops the surrogate id and keys plays by (user_id, played_at, track_id),
    keeping every row; its downgrade numbers them again and restores the unique key."""
    engine = create_engine(await database_factory(), pool_size=1)
    plays = text("SELECT played_at, ms_played FROM plays ORDER BY played_at")
    insert = text(
        "INSERT INTO plays (user_id, played_at, track_id, ms_played, source)"
        " VALUES (:u, :at, 't', :ms, 'import_zip')"
    )
    times = [datetime(2026, 1, 1, 12, minute, tzinfo=UTC) for minute in (10, 40)]
    try:
        await upgrade(engine, "0013")
        async with engine.begin() as connection:
            user = await _user_and_track_t(connection, "UTC")
            for at in times:
                await connection.execute(insert, {"u": user, "at": at, "ms": 60_000})

        await upgrade(engine, "0014")
        async with engine.begin() as connection:
            assert [tuple(r) for r in await connection.execute(plays)] == [
                (at, 60_000) for at in times
            ]
            key = await connection.run_sync(lambda c: inspect(c).get_pk_constraint("plays"))
            assert (key["name"], key["constrained_columns"]) == (
                "pk_plays",
                ["user_id", "played_at", "track_id"],
            )
            # The key refuses the same play twice, as the unique key did.
            duplicate = await connection.execute(
                text(
                    "INSERT INTO plays (user_id, played_at, track_id, source)"
                    " VALUES (:u, :at, 't', 'spotify_api') ON CONFLICT DO NOTHING"
                ),
                {"u": user, "at": times[0]},
            )
            assert duplicate.rowcount == 0

        await downgrade(engine, "0013")
        async with engine.connect() as connection:
            numbered = await connection.execute(text("SELECT id, played_at FROM plays"))
            ids = [tuple(r) for r in numbered]
            assert sorted(at for _, at in ids) == times
            assert len({play_id for play_id, _ in ids}) == 2
            schema = await connection.run_sync(_schema)
            assert schema["plays_key"] == ["id"]
            assert schema["plays_unique"] == [["user_id", "played_at", "track_id"]]
            # New rows are numbered after the old ones.
            await connection.execute(
                insert, {"u": user, "at": datetime(2026, 1, 2, tzinfo=UTC), "ms": 1}
            )
            newest = await connection.scalar(text("SELECT max(id) FROM plays"))
            assert newest == max(play_id for play_id, _ in ids) + 1
            await connection.commit()

        # And up again, from what the downgrade left.
        await upgrade(engine)
        async with engine.connect() as connection:
            assert [r.played_at for r in await connection.execute(plays)] == [
                *times,
                datetime(2026, 1, 2, tzinfo=UTC),
            ]
            schema = await connection.run_sync(_schema)
            assert (schema["plays_key"], schema["plays_unique"]) == (
                ["user_id", "played_at", "track_id"],
                [],
            )
    finally:
        await engine.dispose()


async def test_users_in_zones_no_longer_accepted_get_the_zone_they_stand_for(
    database_factory: DatabaseFactory,
) -> None:
    """0015: posix/ and right/ copies become the zone they copy; localtime and Factory
    become UTC, and a user whose hours started elsewhere gets UTC hours rebuilt."""
    engine = create_engine(await database_factory(), pool_size=1)
    zones = {
        "posix/Asia/Kolkata": ("Asia/Kolkata", 30),
        "right/Europe/Berlin": ("Europe/Berlin", 0),
        "localtime": ("UTC", 0),
        "Factory": ("UTC", 0),
        "Asia/Kathmandu": ("Asia/Kathmandu", 15),
    }
    try:
        await upgrade(engine, "0014")
        async with engine.begin() as connection:
            users = {}
            for name, (_, minute) in zones.items():
                users[name] = (
                    await connection.execute(
                        text(
                            "INSERT INTO users (display_name, timezone, hour_start_minute)"
                            " VALUES ('old', :tz, :minute) RETURNING id"
                        ),
                        {"tz": name, "minute": 30 if name == "localtime" else minute},
                    )
                ).scalar_one()
            await connection.execute(
                text("INSERT INTO tracks (track_id, name, source) VALUES ('t', 'T', 'import_zip')")
            )
            await connection.execute(
                text(
                    "INSERT INTO plays (user_id, played_at, track_id, source)"
                    " VALUES (:u, '2026-01-01 12:10+00', 't', 'import_zip')"
                ),
                {"u": users["localtime"]},
            )
        await upgrade(engine, "0015")
        async with engine.connect() as connection:
            for name, expected in zones.items():
                stored = (
                    await connection.execute(
                        text("SELECT timezone, hour_start_minute FROM users WHERE id = :u"),
                        {"u": users[name]},
                    )
                ).one()
                assert tuple(stored) == expected, name
            hours = await connection.execute(text("SELECT hour, rows FROM play_hours"))
            assert [tuple(r) for r in hours] == [(datetime(2026, 1, 1, 12, tzinfo=UTC), 1)]
    finally:
        await engine.dispose()
