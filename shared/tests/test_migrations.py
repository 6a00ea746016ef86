"""The real Alembic migrations, up and down, against a real PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

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
    "plays",
    "sync_checkpoints",
    "job_runs",
    "import_jobs",
    "coverage_gaps",
    "logs",
    "worker_heartbeats",
    "oauth_states",
}


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    return {
        "tables": tables,
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
        assert ["user_id", "played_at", "track_id"] in first["plays_unique"]
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


async def test_migrations_match_the_models(database_url: str) -> None:
    """Autogenerate finds nothing to do: models and migrations describe the same schema."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()
