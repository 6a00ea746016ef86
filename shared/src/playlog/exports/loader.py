"""Bulk loading of one history member: COPY into a staging table, catalog rows, the
cross-source rule, then one ``INSERT … SELECT`` of the plays not stored yet.

Everything of a member happens in one transaction on one connection, so a member is
stored whole or not at all. The staging tables are temporary and empty themselves at
commit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from playlog.exports.archive import Format
from playlog.exports.records import STAGE_COLUMNS
from playlog.history.identity import MAX_MATCH_WINDOW, PlayIdentity, match_one_to_one
from playlog.history.locks import LOCK_SQL, history_lock_key

log = logging.getLogger(__name__)

# plays.source and tracks.source of imported rows (spelled out in the SQL below as well).
SOURCE = "import_zip"
# extended > account data > API (DESIGN §6): the richer row of a play is kept.
_RICHNESS = {(SOURCE, "extended"): 3, (SOURCE, "account_data"): 2}

# Ids in "C", like the tables they go to (migration 0013).
_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS import_stage (
    played_at timestamptz NOT NULL,
    track_id text COLLATE "C" NOT NULL,
    ms_played integer,
    reason_start text,
    reason_end text,
    shuffle boolean,
    skipped boolean,
    offline boolean,
    incognito boolean,
    sensitive jsonb,
    context_uri text,
    skip boolean NOT NULL DEFAULT false
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS import_items (
    track_id text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    name text NOT NULL,
    album_name text,
    show_name text,
    uri text,
    artist_id text COLLATE "C",
    artist_name text
) ON COMMIT DELETE ROWS;
"""
ITEM_COLUMNS = (
    "track_id",
    "kind",
    "name",
    "album_name",
    "show_name",
    "uri",
    "artist_id",
    "artist_name",
)

# Artists, tracks and links in one statement. The links' foreign keys are checked at its
# end, and its statement triggers fire there: the tracks' one writes each new track's
# track_lookup row with its primary artist at once, and the links' one finds every row
# complete (migration 0011). As three statements, the row of every linked track was
# written and then rewritten (the catalogue statements of a first import of a million
# plays: 3.4-3.8 s then, 2.3-2.4 s now, two alternating profiled runs). The links wait
# for the other two (the subqueries run first), so the tables are written in the same
# order as before, each in key order. A track the API stored first keeps its own
# primary artist (position 0 is taken).
_INSERT_CATALOG = """
    WITH new_artists AS (
        INSERT INTO artists (artist_id, name)
        SELECT DISTINCT ON (artist_id) artist_id, artist_name FROM import_items
        WHERE artist_id IS NOT NULL ORDER BY artist_id
        ON CONFLICT DO NOTHING RETURNING 1
    ), new_tracks AS (
        INSERT INTO tracks (track_id, kind, name, album_name, show_name, uri, source)
        SELECT track_id, kind, name, album_name, show_name, uri, 'import_zip'
        FROM import_items ORDER BY track_id
        ON CONFLICT DO NOTHING RETURNING 1
    )
    INSERT INTO track_artists (track_id, artist_id, position)
    SELECT track_id, artist_id, 0 FROM import_items
    WHERE artist_id IS NOT NULL
        AND (SELECT count(*) FROM new_artists) >= 0 AND (SELECT count(*) FROM new_tracks) >= 0
    ORDER BY track_id
    ON CONFLICT DO NOTHING
"""
# The staged plays not stored yet, each (end time, item) once, the first of the file.
# Every writer of plays holds the user's history lock (so does this), so nothing can
# store the same play in between: a plain insert, which costs a third less than one
# that checks each row for a conflict as it goes (ON CONFLICT; 59 against 92 ms for
# 16,000 new plays, triggers off). The end-time range lets
# the check read only the plays of the member's span.
_INSERT_PLAYS = """
    INSERT INTO plays (user_id, played_at, track_id, ms_played, context_uri, source,
                       source_format, reason_start, reason_end, shuffle, skipped, offline,
                       incognito, sensitive)
    SELECT DISTINCT ON (s.played_at, s.track_id) $1, s.played_at, s.track_id, s.ms_played,
           s.context_uri, 'import_zip', $2, s.reason_start, s.reason_end, s.shuffle,
           s.skipped, s.offline, s.incognito, s.sensitive
    FROM import_stage s
    WHERE NOT s.skip
      AND NOT EXISTS (SELECT 1 FROM plays p
                      WHERE p.user_id = $1 AND p.played_at BETWEEN $3 AND $4
                        AND p.played_at = s.played_at AND p.track_id = s.track_id)
    ORDER BY s.played_at, s.track_id, s.ctid
"""
# The user's skips (rows under 30 s) in the hour totals of a span, read before and after
# a member is stored: the difference is the member's new skips. Counting them from the
# inserted rows themselves (RETURNING) cost a tenth of a first import's time; the hour
# totals, kept in the same statement by the trigger, hold the answer already.
_SKIPS_IN_SPAN = """
    SELECT coalesce(sum(rows - plays), 0) FROM play_hours
    WHERE user_id = $1 AND hour > $2::timestamptz - interval '1 hour' AND hour <= $3"""
# Stored plays of other sources or formats that may record the same playbacks.
_CANDIDATES = """
    SELECT p.played_at, p.track_id, p.source, p.source_format, t.name,
           coalesce(a.name, t.show_name), p.ms_played
    FROM plays p
    JOIN tracks t ON t.track_id = p.track_id
    LEFT JOIN track_artists l ON l.track_id = p.track_id AND l.position = 0
    LEFT JOIN artists a ON a.artist_id = l.artist_id
    WHERE p.user_id = $1 AND p.played_at BETWEEN $2 AND $3
      AND NOT (p.source = 'import_zip' AND p.source_format IS NOT DISTINCT FROM $4)
"""
# Staged rows stored already by this family are plain duplicates and take no part; one
# stored by another source at the very same key does (the richer row is kept).
_STAGED_NEAR = """
    SELECT DISTINCT ON (s.played_at, s.track_id)
        s.played_at, s.track_id, t.name, coalesce(a.name, t.show_name), s.ms_played
    FROM import_stage s
    JOIN tracks t ON t.track_id = s.track_id
    LEFT JOIN track_artists l ON l.track_id = s.track_id AND l.position = 0
    LEFT JOIN artists a ON a.artist_id = l.artist_id
    WHERE s.played_at BETWEEN $2 AND $3
      AND NOT EXISTS (SELECT 1 FROM plays p
                      WHERE p.user_id = $1 AND p.played_at = s.played_at
                        AND p.track_id = s.track_id AND p.source = 'import_zip'
                        AND p.source_format IS NOT DISTINCT FROM $4)
    ORDER BY s.played_at, s.track_id, s.ctid
"""
_SKIP = """
    UPDATE import_stage s SET skip = true
    FROM unnest($1::timestamptz[], $2::text[]) AS k(played_at, track_id)
    WHERE s.played_at = k.played_at AND s.track_id = k.track_id
"""
# The poorer (stored) row goes; the richer (staged) one inherits what only the poorer
# knew (the context).
_REPLACE = """
    WITH gone AS (
        DELETE FROM plays p
        USING unnest($2::timestamptz[], $3::text[], $4::timestamptz[], $5::text[])
            AS r(stored_at, stored_track_id, played_at, track_id)
        WHERE p.user_id = $1 AND p.played_at = r.stored_at AND p.track_id = r.stored_track_id
        RETURNING r.played_at, r.track_id, p.context_uri
    )
    UPDATE import_stage s SET context_uri = gone.context_uri
    FROM gone WHERE s.played_at = gone.played_at AND s.track_id = gone.track_id
"""


@dataclass
class MemberCounts:
    staged: int = 0
    inserted: int = 0
    # Plays another source or format had stored already: skipped, or replacing a poorer row.
    cross_source: int = 0
    replaced: int = 0
    # How many more rows under 30 s the user has: kept, and counted as skips, not plays
    # (the counting rule). A richer row replacing a poorer one of the same playback has
    # the same length, so replacements leave it as it was.
    new_skips: int = 0

    @property
    def new_plays(self) -> int:
        """New rows of 30 s or more (or of unknown length): plays."""
        return self.inserted - self.replaced - self.new_skips

    @property
    def duplicates(self) -> int:
        """Rows whose exact play (same end time, same item) was stored already."""
        return self.staged - self.inserted - (self.cross_source - self.replaced)


# The tables an import writes (the running totals and the lookup rows through triggers),
# the costliest to refresh first, so that two connections finish about together.
REFRESHED = (
    "plays",
    "track_lookup",
    "tracks",
    "play_tracks",
    "play_hours",
    "track_artists",
    "artists",
)


async def needs_refresh(connection: asyncpg.Connection, rows_inserted: int) -> bool:
    """Whether an import that inserted ``rows_inserted`` rows changed the plays by more
    than autovacuum's own default rule (50 rows plus a tenth of what the planner knows
    of), so that :func:`refresh_for_queries` should run."""
    known = await connection.fetchval(
        "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'plays'::regclass"
    )
    return rows_inserted > 50 + 0.1 * float(known)


async def refresh_for_queries(
    connections: Sequence[asyncpg.Connection], *, lock_timeout_ms: int = 5000
) -> bool:
    """ANALYZE and VACUUM the tables an import wrote, table by table, on each of
    ``connections`` side by side (the reader is done by then, so a second connection
    has a core to itself: after a million plays, 0.43-0.45 s on two connections against
    0.66-0.88 s on one).

    ANALYZE, because right after a first import the planner would otherwise guess at
    empty tables until autovacuum comes round, or never where it is off, and the
    analytics read the new plays at once (over a million plays, 10x slower plans: a
    90-day discoveries call took 478 ms instead of 34, year in review 5.2 s instead of
    0.43). VACUUM, because until it has run no page of the new rows is marked all-visible,
    so every index-only scan of the analytics reads the table's pages as well: on a
    server with autovacuum off, after a first import of a million plays, an all-time
    taste summary took 315 ms (p50) instead of 170, a 90-day skips call 98 ms instead of
    53; with autovacuum on, that lasts until it comes round, a minute or more later.
    Returns whether every table was refreshed.

    The import is complete before this: a table another VACUUM or ANALYZE holds for
    longer than ``lock_timeout_ms``, or any other database error on one table, is
    logged and leaves that table to autovacuum instead of failing the import."""
    waiting = list(REFRESHED)

    async def refresh(connection: asyncpg.Connection) -> bool:
        done = True
        # VACUUM cannot run in a transaction: the time-out is the session's.
        await connection.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
        try:
            while waiting:
                table = waiting.pop(0)
                try:
                    # ANALYZE first: the members committed without waiting for the WAL
                    # (begin_member), VACUUM marks a page all-visible only once the
                    # commits of its rows are on disk, and ANALYZE's own commit waits
                    # for everything before it.
                    await connection.execute("ANALYZE " + table)
                    await connection.execute("VACUUM " + table)
                except asyncpg.PostgresError as exc:
                    log.warning(
                        "%s not analyzed and vacuumed after an import (%s, SQLSTATE %s); "
                        "autovacuum will do it",
                        table,
                        type(exc).__name__,
                        exc.sqlstate,
                    )
                    done = False
        finally:
            await connection.execute("RESET lock_timeout")
        return done

    return all(await asyncio.gather(*(refresh(connection) for connection in connections)))


async def prepare(connection: asyncpg.Connection) -> None:
    await connection.execute(_CREATE_STAGING)


async def begin_member(connection: asyncpg.Connection) -> None:
    """Start a member's work inside its just opened transaction.

    Its commit does not wait for the WAL to reach the disk: a crash right after may lose
    the newest members, which a re-run then imports again (their digests are recorded
    in the same transactions). The job's final update commits synchronously, and with
    it every member before it, before an import is reported finished.
    """
    await connection.execute("SET LOCAL synchronous_commit = off")


async def stage(connection: asyncpg.Connection, data: bytes) -> None:
    """Copy a batch encoded by :func:`playlog.exports.copydata.stage_rows`."""
    await _copy(connection, "import_stage", data, STAGE_COLUMNS)


async def _copy(
    connection: asyncpg.Connection, table: str, data: bytes, columns: tuple[str, ...]
) -> None:
    # A memoryview: asyncpg would take bytes for a file name.
    await connection.copy_to_table(table, source=memoryview(data), columns=columns, format="binary")


async def store(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    family: Format,
    items: bytes | None,
    counts: MemberCounts,
    span: tuple[datetime, datetime] | None,
) -> None:
    """Store the staged member: catalog first (``items`` encoded by
    :func:`playlog.exports.copydata.items`), then plays under the cross-source rule.

    Takes the user's history lock, held until the member commits: the collector's page
    writes wait for the plays read and written here, but not for the member's parsing
    and staging before."""
    await connection.execute(LOCK_SQL, *history_lock_key(user_id))
    if items:
        await _copy(connection, "import_items", items, ITEM_COLUMNS)
        await connection.execute(_INSERT_CATALOG)
    if span is None:
        return
    # Replaced rows lie up to the match window outside the span.
    reach = (span[0] - MAX_MATCH_WINDOW, span[1] + MAX_MATCH_WINDOW)
    skips = await connection.fetchval(_SKIPS_IN_SPAN, user_id, *reach)
    await _apply_cross_source(connection, user_id, family, span, counts)
    status = await connection.execute(_INSERT_PLAYS, user_id, family, *span)
    counts.inserted = int(status.rsplit(" ", 1)[-1])
    counts.new_skips = await connection.fetchval(_SKIPS_IN_SPAN, user_id, *reach) - skips


async def _apply_cross_source(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    family: Format,
    span: tuple[datetime, datetime],
    counts: MemberCounts,
) -> None:
    start, end = span[0] - MAX_MATCH_WINDOW, span[1] + MAX_MATCH_WINDOW
    candidates = await connection.fetch(_CANDIDATES, user_id, start, end, family)
    if not candidates:
        return
    stored = [PlayIdentity(r[0], r[1], r[5], r[4], r[2], r[3], r[6]) for r in candidates]
    staged_rows = await connection.fetch(
        _STAGED_NEAR,
        user_id,
        min(row.played_at for row in stored) - MAX_MATCH_WINDOW,
        max(row.played_at for row in stored) + MAX_MATCH_WINDOW,
        family,
    )
    staged = [PlayIdentity(r[0], r[1], r[3], r[2], SOURCE, family, r[4]) for r in staged_rows]
    pairs = match_one_to_one(staged, stored)
    skip: list[PlayIdentity] = []
    # (stored row, staged row)
    replace: list[tuple[PlayIdentity, PlayIdentity]] = []
    for i, j in pairs:
        if _RICHNESS[(SOURCE, family)] > _RICHNESS.get(
            (stored[j].source, stored[j].source_format or ""), 1
        ):
            replace.append((stored[j], staged[i]))
        else:
            skip.append(staged[i])
    if skip:
        await connection.execute(
            _SKIP, [row.played_at for row in skip], [row.track_id for row in skip]
        )
    if replace:
        await connection.execute(
            _REPLACE,
            user_id,
            [old.played_at for old, _ in replace],
            [old.track_id for old, _ in replace],
            [new.played_at for _, new in replace],
            [new.track_id for _, new in replace],
        )
    counts.cross_source = len(pairs)
    counts.replaced = len(replace)
