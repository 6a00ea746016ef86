"""Importing exports into PostgreSQL: counts, kinds, re-imports, atomic members, and the
cross-source rule against polled plays and the other export family."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from playlog.db.engine import to_async_url
from playlog.db.models import Play, Track
from playlog.errors import NotFound
from playlog.exports import copydata, importer, jobs, loader, reader
from playlog.exports.archive import ExportArchive, ExportRejected
from playlog.exports.importer import import_export
from playlog.exports.report import MemberReport, Totals
from playlog.settings import ImportSettings
from playlog.testing.exports import (
    ACCOUNT_DIR,
    account_play,
    chapter_play,
    delete_users_and_their_catalog,
    episode_play,
    extended_member,
    track_play,
    write_zip,
)

SETTINGS = ImportSettings()


async def _committed_user(engine: AsyncEngine, name: str) -> uuid.UUID:
    async with engine.begin() as connection:
        created = await connection.execute(
            text("INSERT INTO users (display_name) VALUES (:name) RETURNING id"), {"name": name}
        )
        new_id: uuid.UUID = created.scalar_one()
    return new_id


@pytest_asyncio.fixture
async def user_id(db_engine: AsyncEngine) -> AsyncIterator[uuid.UUID]:
    """A committed user (imports commit per member); deleted with everything it owns."""
    new_id = await _committed_user(db_engine, "importer")
    yield new_id
    await delete_users_and_their_catalog(db_engine, [new_id])


async def plays_of(engine: AsyncEngine, user: uuid.UUID) -> list[Any]:
    async with engine.connect() as connection:
        result = await connection.execute(
            select(
                Play.played_at,
                Play.track_id,
                Play.source,
                Play.source_format,
                Play.ms_played,
                Play.sensitive,
                Play.context_uri,
            )
            .where(Play.user_id == user)
            .order_by(Play.played_at)
        )
        return list(result.all())


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


async def test_an_extended_export_is_imported_with_every_kind(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    first = [
        track_play("2024-01-01T10:00:00Z"),
        track_play(
            "2024-01-01T10:04:00Z",
            "0VjIjW4GlUZAMYd2vXMi3b",
            name="Blinding Lights",
            artist="The Weeknd",
            ms_played=0,
        ),
        episode_play(
            "2024-01-01T11:00:00Z",
            "512ojhOuo1ktJprKbVcKyQ",
            "Ep. 1 - Ünïcode 🎙",
            "A Show",
            1_800_000,
        ),
        chapter_play("2024-01-01T12:00:00Z", "7ouMYWpwJ422jRcDASZB7P", "Chapter 1", "A Book"),
        track_play("2024-01-01T12:10:00Z", None, name="My Demo", artist="Me", album="Tapes"),
        track_play("2024-01-01T12:20:00Z", None, name=None, artist=None, album=None),
    ]
    # The first row again (a repeat across files), and a new one.
    second = [track_play("2024-01-01T10:00:00Z"), track_play("2024-01-02T09:00:00Z")]
    path = write_zip(
        tmp_path / "export.zip",
        {
            extended_member(0): first,
            extended_member(1): second,
            "Spotify Extended Streaming History/Streaming_History_Video_2024.json": [
                track_play("2024-01-03T10:00:00Z")
            ],
        },
    )
    report = await import_export(db_engine, user_id, path, SETTINGS)

    assert (report.status, report.formats) == ("success", ["extended"])
    # Six rows stored: five plays and one skip (ms_played 0), which is no play.
    assert (report.records_seen, report.plays_inserted, report.skips_inserted) == (8, 5, 1)
    assert report.duplicates == 1
    assert report.skipped == {"no_identity": 1}
    assert (report.earliest, report.latest) == (at("2024-01-01 10:00"), at("2024-01-02 09:00"))
    assert [f.records for f in report.files] == [6, 2]
    stored = await plays_of(db_engine, user_id)
    assert len(stored) == 6
    assert {row.source for row in stored} == {"import_zip"}
    assert all(row.sensitive is None for row in stored)
    async with db_engine.connect() as connection:
        kinds = dict(
            (
                await connection.execute(
                    select(Track.track_id, Track.kind).where(
                        Track.track_id.in_([row.track_id for row in stored])
                    )
                )
            ).all()
        )
    assert sorted(kinds.values()) == ["audiobook", "episode", "track", "track", "track"]
    assert kinds["512ojhOuo1ktJprKbVcKyQ"] == "episode"
    assert any(track_id.startswith("local:") for track_id in kinds)

    again = await import_export(db_engine, user_id, path, SETTINGS)
    assert (again.plays_inserted, again.duplicates, again.records_seen) == (0, 7, 8)
    assert {f.status for f in again.files} == {"already_imported"}
    assert len(await plays_of(db_engine, user_id)) == 6


async def test_the_same_records_in_another_file_add_nothing(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    records = [track_play(f"2024-02-01T10:0{i}:00Z") for i in range(5)]
    one = write_zip(tmp_path / "one.zip", {extended_member(0): records})
    # Same plays, split differently: no digest matches, the primary key does the work.
    two = write_zip(
        tmp_path / "two.zip", {extended_member(0): records[:2], extended_member(1): records[2:]}
    )
    assert (await import_export(db_engine, user_id, one, SETTINGS)).plays_inserted == 5
    again = await import_export(db_engine, user_id, two, SETTINGS)
    assert (again.plays_inserted, again.duplicates) == (0, 5)
    assert {f.status for f in again.files} == {"imported"}


async def _planner_rows(engine: AsyncEngine) -> tuple[float, int]:
    """What the planner believes ``plays`` holds, and what it holds."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT (SELECT reltuples FROM pg_class WHERE oid = 'plays'::regclass),"
                    " (SELECT count(*) FROM plays)"
                )
            )
        ).one()
    return float(row[0]), int(row[1])


async def _analyze_plays(engine: AsyncEngine) -> None:
    """Bring the planner's figures up to date, from a compacted table: the space of rows
    deleted by earlier tests would otherwise make VACUUM's own estimate an extrapolation."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE plays"))


async def test_an_import_that_grows_the_plays_vacuums_and_analyzes_them(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    await _grow_plays(db_engine, db_engine, user_id, tmp_path)


async def test_the_refresh_does_with_one_connection_when_no_second_is_free(
    db_engine: AsyncEngine,
    database_url: str,
    user_id: uuid.UUID,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An engine whose only connection the import holds: the second never comes.
    one = create_async_engine(
        to_async_url(database_url), pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    try:
        with caplog.at_level("WARNING", logger="playlog.exports.importer"):
            await _grow_plays(one, db_engine, user_id, tmp_path)
    finally:
        await one.dispose()
    assert "refreshing on one connection: no second one (TimeoutError)" in caplog.text


async def _grow_plays(
    importing: AsyncEngine, db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    """Import more plays than autovacuum's rule waits for through ``importing``: the
    planner knows them at once, and every page of them is marked all-visible."""
    await _analyze_plays(db_engine)
    before, stored = await _planner_rows(db_engine)
    assert before == stored
    # More than autovacuum's rule (50 rows and a tenth of the table) would wait for.
    many = 60 + stored // 10
    start = datetime(2024, 3, 1, tzinfo=UTC)
    records = [
        track_play((start + timedelta(minutes=4 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        for i in range(many)
    ]
    path = write_zip(tmp_path / "many.zip", {extended_member(0): records})
    assert (await import_export(importing, user_id, path, SETTINGS)).plays_inserted == many
    assert await _planner_rows(db_engine) == (stored + many, stored + many)
    # Vacuumed too: the analytics' index-only scans need not read the table (the test
    # server runs no autovacuum).
    async with db_engine.connect() as connection:
        pages, visible = (
            await connection.execute(
                text("SELECT relpages, relallvisible FROM pg_class WHERE oid = 'plays'::regclass")
            )
        ).one()
    assert pages > 0
    assert visible == pages


async def test_a_small_import_leaves_the_tables_to_autovacuum(db_engine: AsyncEngine) -> None:
    await _analyze_plays(db_engine)
    known, _ = await _planner_rows(db_engine)
    async with db_engine.connect() as wrapper:
        raw = await wrapper.get_raw_connection()
        connection: asyncpg.Connection = raw.driver_connection
        assert not await loader.needs_refresh(connection, 50 + int(known) // 10)
        assert await loader.needs_refresh(connection, 51 + int(known) // 10)


async def test_tables_held_by_another_session_do_not_fail_the_import(
    db_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The members are stored by then: a table a VACUUM or ANALYZE holds is left to
    autovacuum, with a warning, after a short wait; the other tables are refreshed."""
    async with (
        db_engine.connect() as holder,
        db_engine.connect() as first,
        db_engine.connect() as second,
    ):
        await holder.execute(text("LOCK TABLE play_hours IN SHARE UPDATE EXCLUSIVE MODE"))
        connections: list[asyncpg.Connection] = [
            (await wrapper.get_raw_connection()).driver_connection for wrapper in (first, second)
        ]
        analyzed_before = await _last_analyzed(connections[0])
        with caplog.at_level("WARNING", logger="playlog.exports.loader"):
            ran = await loader.refresh_for_queries(connections, lock_timeout_ms=50)
        assert not ran
        assert "play_hours not analyzed and vacuumed" in caplog.text
        assert "LockNotAvailableError, SQLSTATE 55P03" in caplog.text
        assert len(caplog.records) == 1
        analyzed_after = await _last_analyzed(connections[0])
        refreshed = {
            table
            for table, at in analyzed_after.items()
            if at is not None and at != analyzed_before[table]
        }
        assert refreshed == set(loader.REFRESHED) - {"play_hours"}
        # The connections are usable afterwards, with no time-out left behind.
        for connection in connections:
            assert await connection.fetchval("SELECT 1") == 1
            assert await connection.fetchval("SHOW lock_timeout") == "0"
        await holder.rollback()


async def _last_analyzed(connection: asyncpg.Connection) -> dict[str, Any]:
    # pg_stat_* is a snapshot per transaction: read it afresh.
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    rows = await connection.fetch(
        "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname = ANY($1)",
        list(loader.REFRESHED),
    )
    return {row["relname"]: row["last_analyze"] for row in rows}


async def test_a_record_repeated_within_a_file_is_stored_once_as_first_written(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    # The same play (end time and track) three times in one file, after and before
    # others: the file's first copy is the play stored, the others are duplicates (each
    # is too long to be another playback ending in the same second).
    records = [
        track_play("2024-02-01T10:05:00Z", ms_played=100_000),
        track_play("2024-02-01T10:00:00Z"),
        track_play("2024-02-01T10:05:00Z", ms_played=200_000),
        track_play("2024-02-01T10:10:00Z"),
        track_play("2024-02-01T10:05:00Z", ms_played=300_000),
    ]
    path = write_zip(tmp_path / "e.zip", {extended_member(0): records})
    report = await import_export(db_engine, user_id, path, SETTINGS)
    assert (report.plays_inserted, report.duplicates) == (3, 2)
    stored = await plays_of(db_engine, user_id)
    assert [(row.played_at, row.ms_played) for row in stored] == [
        (at("2024-02-01T10:00:00"), 213_000),
        (at("2024-02-01T10:05:00"), 100_000),
        (at("2024-02-01T10:10:00"), 213_000),
    ]


@pytest.mark.parametrize("short_first", [False, True])
async def test_a_play_and_a_skip_of_one_track_within_the_exports_precision_are_both_kept(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path, short_first: bool
) -> None:
    # A track ends and, played again on repeat, is skipped before the clock moves on: in
    # extended history within the second, in account data within the minute. One is a
    # play, the other a skip, whichever the file lists first; an exact copy of either
    # is a duplicate.
    extended = [
        track_play("2024-02-01T10:05:00Z", ms_played=213_000),
        track_play("2024-02-01T10:05:00Z", ms_played=400),
    ]
    account = [
        account_play("2024-03-01 09:00", "Sigur Rós", "Hoppípolla", 190_075),
        account_play("2024-03-01 09:00", "Sigur Rós", "Hoppípolla", 8_295),
    ]
    if short_first:
        extended.reverse()
        account.reverse()
    path = write_zip(
        tmp_path / "e.zip",
        {
            extended_member(0): [*extended, extended[0]],
            f"{ACCOUNT_DIR}/StreamingHistory_music_0.json": [*account, account[1]],
        },
    )
    report = await import_export(db_engine, user_id, path, SETTINGS)
    assert (report.plays_inserted, report.skips_inserted, report.duplicates) == (2, 2, 2)
    stored = await plays_of(db_engine, user_id)
    first_at = {"extended": at("2024-02-01T10:05:00"), "account_data": at("2024-03-01T09:00:00")}
    assert sorted((row.source_format, row.played_at, row.ms_played) for row in stored) == sorted(
        (family, first_at[family] + timedelta(microseconds=index), ms)
        for family, rows, key in (
            ("account_data", account, "msPlayed"),
            ("extended", extended, "ms_played"),
        )
        for index, ms in enumerate(row[key] for row in rows)
    )
    # The same file again, and the same rows in another file: nothing new.
    again = await import_export(db_engine, user_id, path, SETTINGS)
    other = write_zip(tmp_path / "o.zip", {extended_member(3): [extended[1], *extended]})
    repacked = await import_export(db_engine, user_id, other, SETTINGS)
    assert (again.plays_inserted + again.skips_inserted, again.duplicates) == (0, 6)
    assert (repacked.plays_inserted + repacked.skips_inserted, repacked.duplicates) == (0, 3)
    assert len(await plays_of(db_engine, user_id)) == 4


async def test_sensitive_fields_are_stored_only_when_kept(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    path = write_zip(tmp_path / "e.zip", {extended_member(): [track_play("2024-03-01T10:00:00Z")]})
    await import_export(db_engine, user_id, path, ImportSettings(import_keep_sensitive_fields=True))
    (row,) = await plays_of(db_engine, user_id)
    assert row.sensitive == {"ip_addr": "192.0.2.10", "conn_country": "DE", "platform": "android"}


async def test_a_failing_member_is_skipped_whole_and_named(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    good = [track_play("2024-04-01T10:00:00Z")]
    # 20,000 valid records (more than one staging batch) and then a cut-off end.
    many = ",".join(
        f'{{"ts": "2024-05-01T00:00:00Z", "ms_played": {i}, "spotify_track_uri": '
        f'"spotify:track:{i:022d}", "master_metadata_track_name": "t"}}'
        for i in range(20_000)
    )
    path = write_zip(
        tmp_path / "e.zip",
        {extended_member(0): good, extended_member(1): "[" + many + ', {"ts": "2024-'},
    )
    report = await import_export(db_engine, user_id, path, SETTINGS)
    assert report.status == "partial"
    failed = report.files[1]
    assert (failed.name, failed.status) == (extended_member(1), "failed")
    assert "ends abruptly" in str(failed.error)
    assert len(await plays_of(db_engine, user_id)) == 1


async def test_an_unknown_user_is_refused(db_engine: AsyncEngine, tmp_path: Path) -> None:
    path = write_zip(tmp_path / "e.zip", {extended_member(): [track_play("2024-03-01T10:00:00Z")]})
    with pytest.raises(NotFound, match="no user"):
        await import_export(db_engine, uuid.uuid4(), path, SETTINGS)


async def test_too_many_records_stop_the_import(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    records = [track_play(f"2024-02-01T10:{i:02d}:00Z") for i in range(30)]
    path = write_zip(tmp_path / "e.zip", {extended_member(): records})
    with pytest.raises(Exception, match="IMPORT_MAX_RECORDS"):
        await import_export(db_engine, user_id, path, ImportSettings(import_max_records=10))
    assert await plays_of(db_engine, user_id) == []


async def _poll(engine: AsyncEngine, user: uuid.UUID, played_at: str, track_id: str) -> None:
    """A play as the collector stores it from the API (no ms_played, a context)."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO tracks (track_id, name, source) VALUES (:t, 'Never Gonna Give You Up',"
                " 'spotify_api') ON CONFLICT DO NOTHING"
            ),
            {"t": track_id},
        )
        await connection.execute(
            text(
                "INSERT INTO plays (user_id, played_at, track_id, source, context_uri) "
                "VALUES (:u, :p, :t, 'spotify_api', 'spotify:playlist:abc')"
            ),
            {"u": user, "p": at(played_at), "t": track_id},
        )


@pytest_asyncio.fixture
async def other_user_id(db_engine: AsyncEngine) -> AsyncIterator[uuid.UUID]:
    new_id = await _committed_user(db_engine, "neighbour")
    yield new_id
    await delete_users_and_their_catalog(db_engine, [new_id])


async def test_export_rows_replace_polled_rows_of_the_same_play(
    db_engine: AsyncEngine, user_id: uuid.UUID, other_user_id: uuid.UUID, tmp_path: Path
) -> None:
    track = "4uLU6hMCjMI75M1A2tKUQC"
    await _poll(db_engine, user_id, "2024-06-01 10:00:03", track)
    await _poll(db_engine, user_id, "2024-06-01 12:00:00", track)  # not in the export
    # Another user's row of the same item at the same time is theirs and stays.
    await _poll(db_engine, other_user_id, "2024-06-01 10:00:03", track)
    path = write_zip(
        tmp_path / "e.zip",
        {
            extended_member(): [
                track_play("2024-06-01T10:00:00Z", track),  # the polled play, 3 s apart
                track_play("2024-06-01T10:04:00Z", track),  # a replay: a play of its own
            ]
        },
    )
    report = await import_export(db_engine, user_id, path, SETTINGS)
    assert (report.plays_inserted, report.cross_source_duplicates, report.replaced) == (1, 1, 1)
    stored = await plays_of(db_engine, user_id)
    assert [(r.played_at, r.source, r.context_uri) for r in stored] == [
        (at("2024-06-01 10:00:00"), "import_zip", "spotify:playlist:abc"),
        (at("2024-06-01 10:04:00"), "import_zip", None),
        (at("2024-06-01 12:00:00"), "spotify_api", "spotify:playlist:abc"),
    ]
    (theirs,) = await plays_of(db_engine, other_user_id)
    assert (theirs.played_at, theirs.source) == (at("2024-06-01 10:00:03"), "spotify_api")


async def test_a_skip_near_a_polled_play_is_a_playback_of_its_own(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    # Spotify lists only plays of 30 s or more: the polled row is not this 12 s skip.
    track = "4uLU6hMCjMI75M1A2tKUQC"
    await _poll(db_engine, user_id, "2024-06-01 10:00:03", track)
    skip = track_play("2024-06-01T10:00:00Z", track, ms_played=12_000)
    path = write_zip(tmp_path / "e.zip", {extended_member(): [skip]})
    report = await import_export(db_engine, user_id, path, SETTINGS)
    assert (report.plays_inserted, report.skips_inserted) == (0, 1)
    assert (report.cross_source_duplicates, report.replaced) == (0, 0)
    stored = await plays_of(db_engine, user_id)
    assert [(r.played_at, r.source, r.ms_played) for r in stored] == [
        (at("2024-06-01 10:00:00"), "import_zip", 12_000),
        (at("2024-06-01 10:00:03"), "spotify_api", None),
    ]


async def test_account_data_meets_extended_history_of_the_same_plays(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    extended = [
        track_play(
            "2024-07-01T10:00:41Z", "6eTGxxQxiTFE6LfZHC33Wm", name="Hoppípolla", artist="Sigur Rós"
        ),
        track_play(
            "2024-07-01T10:05:00Z",
            "0VjIjW4GlUZAMYd2vXMi3b",
            name="Blinding Lights",
            artist="The Weeknd",
        ),
    ]
    account = [
        # Same play, minute precision, names only (and differently cased).
        account_play("2024-07-01 10:00", "SIGUR RÓS", "hoppípolla"),
        # A play the extended export does not have.
        account_play("2024-07-01 18:00", "The Weeknd", "Blinding Lights"),
    ]
    path = write_zip(
        tmp_path / "both.zip",
        {f"{ACCOUNT_DIR}/StreamingHistory_music_0.json": account, extended_member(): extended},
    )
    report = await import_export(db_engine, user_id, path, SETTINGS)
    assert report.formats == ["account_data", "extended"]
    assert (report.plays_inserted, report.cross_source_duplicates, report.replaced) == (3, 1, 0)
    stored = await plays_of(db_engine, user_id)
    assert [r.source_format for r in stored] == ["extended", "extended", "account_data"]


async def test_extended_history_replaces_account_data_imported_before(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    account = write_zip(
        tmp_path / "account.zip",
        {
            f"{ACCOUNT_DIR}/StreamingHistory_music_0.json": [
                account_play("2024-08-01 10:00", "Rick Astley", "Never Gonna Give You Up")
            ]
        },
    )
    extended = write_zip(
        tmp_path / "extended.zip", {extended_member(): [track_play("2024-08-01T10:00:50Z")]}
    )
    await import_export(db_engine, user_id, account, SETTINGS)
    report = await import_export(db_engine, user_id, extended, SETTINGS)
    assert (report.plays_inserted, report.skips_inserted, report.replaced) == (0, 0, 1)
    (row,) = await plays_of(db_engine, user_id)
    assert (row.source_format, row.track_id) == ("extended", "4uLU6hMCjMI75M1A2tKUQC")


async def test_skips_are_counted_apart_and_a_replaced_skip_is_no_new_one(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    song = ("Rick Astley", "Never Gonna Give You Up")
    account = write_zip(
        tmp_path / "account.zip",
        {
            f"{ACCOUNT_DIR}/StreamingHistory_music_0.json": [
                account_play("2024-08-01 10:00", *song, ms_played=12_000),
                account_play("2024-08-01 11:00", *song, ms_played=29_999),
                account_play("2024-08-01 12:00", *song, ms_played=30_000),
            ]
        },
    )
    first = await import_export(db_engine, user_id, account, SETTINGS)
    assert (first.plays_inserted, first.skips_inserted) == (1, 2)
    # The extended rows of the first two playbacks (a skip replacing a skip), and a new
    # skip an hour and more away from every other row.
    extended = write_zip(
        tmp_path / "extended.zip",
        {
            extended_member(): [
                track_play("2024-08-01T10:00:20Z", ms_played=12_000),
                track_play("2024-08-01T11:00:30Z", ms_played=29_999),
                track_play("2024-08-03T09:00:00Z", ms_played=5_000),
            ]
        },
    )
    second = await import_export(db_engine, user_id, extended, SETTINGS)
    assert (second.plays_inserted, second.skips_inserted, second.replaced) == (0, 1, 2)
    assert len(await plays_of(db_engine, user_id)) == 4


# --- as a job ---------------------------------------------------------------------------


class WatchedJob(jobs.JobHooks):
    """A job's own hooks that note, as each member is stored, the job row as the members
    before it left it; and that cancel the job, as an administrator would, at member
    ``cancel_at``."""

    def __init__(self, engine: AsyncEngine, job: jobs.ClaimedImport, cancel_at: int = 0) -> None:
        super().__init__(engine, job, timedelta(minutes=5), threading.Event())
        # (records done, records ingested, files in the report) as each member begins.
        self.rows: list[tuple[int, int, int | None]] = []
        self.cancel_at = cancel_at

    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, totals: Totals
    ) -> None:
        async with self.engine.begin() as other:
            done, ingested, report = (
                await other.execute(
                    text(
                        "SELECT records_done, records_ingested, report FROM import_jobs "
                        "WHERE id = :id"
                    ),
                    {"id": self.job.job_id},
                )
            ).one()
            self.rows.append((done, ingested, None if report is None else len(report["files"])))
            if len(self.rows) == self.cancel_at:
                await other.execute(
                    text("UPDATE import_jobs SET status = 'cancelled' WHERE id = :id"),
                    {"id": self.job.job_id},
                )
        await super().member_stored(connection, member, totals)


async def running_job(engine: AsyncEngine, user: uuid.UUID, path: Path) -> jobs.ClaimedImport:
    job = jobs.ClaimedImport(uuid.uuid4(), user, path, "test/1", 1, upload_dir=None)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO import_jobs (id, user_id, status, lease_owner, lease_expires_at, "
                "attempts, started_at) VALUES (:id, :user, 'running', :owner, "
                "now() + interval '5 minutes', 1, now())"
            ),
            {"id": job.job_id, "user": user, "owner": job.owner},
        )
    return job


async def job_row(engine: AsyncEngine, job_id: uuid.UUID) -> Any:
    async with engine.connect() as connection:
        return (
            await connection.execute(
                text("SELECT status, records_ingested, report FROM import_jobs WHERE id = :id"),
                {"id": job_id},
            )
        ).one()


def three_members(tmp_path: Path) -> Path:
    return write_zip(
        tmp_path / "e.zip",
        {
            extended_member(i): [track_play(f"2024-0{i + 1}-01T10:0{m}:00Z") for m in range(2)]
            for i in range(3)
        },
    )


@pytest.mark.parametrize(
    ("every_s", "done", "reports"),
    [
        # No progress step: the report is written once, at the end, not with each member;
        # the records done move with the members' own counts.
        (float("inf"), [0, 2, 4], [None, None, None]),
        # A progress step after every message: the report of the members handled, written
        # only when there is one more; the records done include the member being stored.
        (0.0, [2, 4, 6], [None, 1, 2]),
    ],
)
async def test_a_job_writes_its_counts_with_each_member_and_its_report_with_progress(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    every_s: float,
    done: list[int],
    reports: list[int | None],
) -> None:
    monkeypatch.setattr(importer, "PROGRESS_EVERY_S", every_s)
    job = await running_job(db_engine, user_id, three_members(tmp_path))
    hooks = WatchedJob(db_engine, job)
    outcome = await jobs.run_job(db_engine, job, SETTINGS, hooks)
    assert outcome.status == "success"
    # Never fewer records done than plays ingested, progress step or not.
    assert hooks.rows == list(zip(done, [0, 2, 4], reports, strict=True))
    status, ingested, report = await job_row(db_engine, job.job_id)
    assert (status, ingested) == ("success", 6)
    assert [f["name"] for f in report["files"]] == [extended_member(i) for i in range(3)]


async def test_a_cancelled_job_keeps_the_report_of_the_members_it_stored(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No progress step: the report a stop leaves comes from the stop itself.
    monkeypatch.setattr(importer, "PROGRESS_EVERY_S", float("inf"))
    job = await running_job(db_engine, user_id, three_members(tmp_path))
    outcome = await jobs.run_job(db_engine, job, SETTINGS, WatchedJob(db_engine, job, 3))
    assert outcome.status == "cancelled"
    status, ingested, report = await job_row(db_engine, job.job_id)
    assert (status, ingested, report["status"]) == ("cancelled", 4, "cancelled")
    assert [f["name"] for f in report["files"]] == [extended_member(i) for i in range(2)]
    assert (report["plays_inserted"], len(await plays_of(db_engine, user_id))) == (4, 4)


async def test_hostile_values_are_stored_or_skipped_and_every_file_is_imported(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    path = write_zip(
        tmp_path / "e.zip",
        {
            extended_member(0): [
                track_play("2024-01-01T10:00:00Z", "a\x00b", name="Bad\x00Name", ip_addr="\x00")
            ],
            extended_member(1): [track_play("2024-01-02T10:00:00Z", "x" * 4000, name="Long")],
            extended_member(2): [
                track_play("9999-12-31T23:59:00Z"),
                track_play("9999-12-31T20:00:00-05:00"),
                track_play("0001-01-01T00:01:00Z"),
                track_play("2024-01-15"),
                track_play("2024-01-03T10:00:00Z"),
            ],
        },
    )
    settings = ImportSettings(import_keep_sensitive_fields=True)
    report = await import_export(db_engine, user_id, path, settings)
    assert [f.status for f in report.files] == ["imported"] * 3
    assert (report.records_seen, report.plays_inserted) == (7, 3)
    assert report.skipped == {"bad_timestamp": 4}
    stored = await plays_of(db_engine, user_id)
    assert stored[0].track_id == "a\ufffdb"
    assert stored[0].sensitive["ip_addr"] == "\ufffd"
    assert stored[1].track_id.startswith("local:")
    async with db_engine.connect() as connection:
        names = await connection.execute(
            select(Track.name).where(Track.track_id.in_([r.track_id for r in stored[:2]]))
        )
        assert sorted(names.scalars()) == ["Bad\ufffdName", "Long"]


async def test_a_member_the_database_refuses_fails_alone(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    """The reader keeps unstorable values out; should one get through, its member fails
    with the database's reason and the import goes on with the next."""
    path = write_zip(
        tmp_path / "e.zip",
        {extended_member(i): [track_play(f"2024-0{i + 1}-01T10:00:00Z")] for i in range(2)},
    )
    good = copydata.stage_rows(
        [copydata.stage_row(at("2024-02-01 10:00"), "t1", 60_000, copydata.NO_BEHAVIOUR, None)]
    )
    # Not UTF-8: the server refuses the COPY.
    bad = good.replace(b"t1", b"\xff\xfe")
    async with db_engine.connect() as wrapper:
        raw = await wrapper.get_raw_connection()
        connection: asyncpg.Connection = raw.driver_connection
        await loader.prepare(connection)
        with ExportArchive(path, SETTINGS) as archive:
            run = importer._Run(connection, user_id, None, archive, importer._NoHooks(), None)
            items = copydata.items([("t1", "track", "T", None, None, None, None, None)])
            for index, data in enumerate((bad, good)):
                when = at(f"2024-0{index + 1}-01 10:00")
                await run._handle(reader.Begin(index))
                await run._handle(reader.Rows(data))
                await run._handle(reader.End(index, f"d{index}", 1, {}, when, when, items))
        await wrapper.rollback()
    failed, stored = run.files
    assert (failed.status, stored.status) == ("failed", "imported")
    assert str(failed.error).startswith("the database refused a record: invalid byte sequence")
    assert [(p.played_at, p.track_id) for p in await plays_of(db_engine, user_id)] == [
        (at("2024-02-01 10:00"), "t1")
    ]


async def test_a_cap_met_while_reading_names_the_files_that_stay_stored(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    path = write_zip(
        tmp_path / "e.zip",
        {
            extended_member(i): [track_play(f"2024-0{i + 1}-01T10:0{m}:00Z") for m in range(8)]
            for i in range(3)
        },
    )
    with pytest.raises(ExportRejected) as refused:
        await import_export(db_engine, user_id, path, ImportSettings(import_max_records=20))
    assert str(refused.value.message) == (
        "the export holds more than IMPORT_MAX_RECORDS (20) records; the 2 history file(s) "
        "read before it stay stored (16 new plays, 0 skips), nothing after them was imported"
    )
    assert len(await plays_of(db_engine, user_id)) == 16
    # Raising the cap and importing again adds the rest.
    again = await import_export(db_engine, user_id, path, SETTINGS)
    assert (again.plays_inserted, [f.status for f in again.files][:2]) == (
        8,
        ["already_imported"] * 2,
    )


async def test_a_polled_play_at_the_very_same_key_is_replaced_by_the_export_row(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    track = "4uLU6hMCjMI75M1A2tKUQC"
    await _poll(db_engine, user_id, "2024-06-01 10:00:00", track)
    path = write_zip(
        tmp_path / "e.zip", {extended_member(): [track_play("2024-06-01T10:00:00Z", track)]}
    )
    report = await import_export(db_engine, user_id, path, SETTINGS)
    assert (report.plays_inserted, report.duplicates) == (0, 0)
    assert (report.cross_source_duplicates, report.replaced) == (1, 1)
    (row,) = await plays_of(db_engine, user_id)
    assert (row.source, row.ms_played, row.context_uri) == (
        "import_zip",
        213_000,
        "spotify:playlist:abc",
    )
    # The same file again: a plain duplicate of its own row.
    again = await import_export(db_engine, user_id, path, SETTINGS)
    assert (again.duplicates, again.cross_source_duplicates) == (1, 0)


async def test_claims_take_turns_so_a_user_never_has_two_running_imports(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path
) -> None:
    async with db_engine.begin() as connection:
        for i in range(2):
            await connection.execute(
                text(
                    "INSERT INTO import_jobs (id, user_id, status, storage_path,"
                    " original_filename, file_size_bytes, created_at)"
                    " VALUES (gen_random_uuid(), :u, 'pending', :p, 'x.zip', 1,"
                    " now() + make_interval(secs => :i))"
                ),
                {"u": user_id, "p": f"{user_id}/{i}.zip", "i": i},
            )
    lease = timedelta(minutes=2)
    # Another worker's claim holds the turn while it claims the first job ...
    async with db_engine.connect() as other:
        await other.execute(jobs._CLAIMS_TAKE_TURNS)
        waiting = asyncio.ensure_future(jobs.claim(db_engine, "B", lease, 3, tmp_path))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        first = await other.execute(jobs._CLAIM, {"owner": "A", "lease": lease, "max_attempts": 3})
        assert first.first() is not None
        await other.commit()
        # ... and this one, let in only then, sees it running.
        assert await waiting is None
    async with db_engine.begin() as connection:
        await connection.execute(text("DELETE FROM import_jobs WHERE user_id = :u"), {"u": user_id})
