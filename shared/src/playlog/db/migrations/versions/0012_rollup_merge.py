"""Per-track totals of inserted plays merged in, not upserted row by row.

An import of a million plays writes about 512,000 per-track totals (each member of an
export names some 8,000 tracks, most of them known from earlier members). As
``INSERT … ON CONFLICT DO UPDATE`` each total was a speculative insert that found its
conflict, locked the row and then updated it; ``MERGE`` joins the statement's totals to
the stored ones once and updates or inserts each (the trigger's own time in a first
import of a million plays: 5.5-6.1 s before, 3.4-3.6 s with the checks below, from
pg_stat_user_functions in alternating runs).

Two checks got cheaper too:

- a play's track must exist: only tracks without a stored total are looked up (a stored
  total means the track exists, since a track with totals cannot be deleted), and a
  missing one makes the MERGE's last branch raise the error;
- the users are counted and locked from their distinct ids (one hashed pass over the
  inserted rows) instead of a sort for the count and a semi-join for the lock.

Writers of one user's plays take turns (the history lock), so no two statements insert
the same user's totals at once, which MERGE, unlike an upsert, would report as a
unique violation.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-21
"""

import importlib
from collections.abc import Sequence

from alembic import op

previous = importlib.import_module("playlog.db.migrations.versions.0008_plays_without_track_index")
turns = importlib.import_module("playlog.db.migrations.versions.0007_delete_takes_turns")
first = importlib.import_module("playlog.db.migrations.versions.0005_plays_statement_checks")

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTED_C = first.COUNTED.format("c")

_OLD_DECLARE = "    missing text;\n    users_wanted bigint;\n    users_locked bigint;\n"
_NEW_DECLARE = "    wanted uuid[];\n    users_locked bigint;\n"
_OLD_USERS = """        SELECT count(DISTINCT c.user_id) INTO users_wanted FROM changed c;
        SELECT count(*) INTO users_locked FROM (
            SELECT 1 FROM users u WHERE u.id IN (SELECT c.user_id FROM changed c)
            FOR SHARE OF u) locked;
        IF users_locked <> users_wanted THEN"""
_NEW_USERS = """        SELECT array_agg(g.user_id) INTO wanted
        FROM (SELECT c.user_id FROM changed c GROUP BY 1) g;
        SELECT count(*) INTO users_locked FROM (
            SELECT 1 FROM users u WHERE u.id = ANY (wanted) FOR SHARE OF u) locked;
        IF users_locked <> cardinality(wanted) THEN"""
# Raised from the MERGE for a total whose track does not exist.
MISSING_TRACK_FUNCTION = """
CREATE FUNCTION playlog_missing_track(track_id text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'plays reference a track that does not exist: %', track_id
        USING ERRCODE = 'foreign_key_violation';
END $$;
"""
_TRACKS_START = "        -- The tracks are checked on the per-track totals"
_TRACKS_END = "        RETURN NULL;\n    END IF;\n"
_NEW_TRACKS = f"""        MERGE INTO play_tracks AS t
        USING (
            SELECT c.user_id, c.track_id, {first.TOTALS},
                min(c.played_at) FILTER (WHERE {_COUNTED_C}) AS first_played_at,
                max(c.played_at) FILTER (WHERE {_COUNTED_C}) AS last_played_at
            FROM changed c GROUP BY 1, 2
        ) AS d ON t.user_id = d.user_id AND t.track_id = d.track_id
        WHEN MATCHED THEN UPDATE SET
            rows = t.rows + d.rows,
            plays = t.plays + d.plays,
            listening_ms = t.listening_ms + d.listening_ms,
            first_played_at = least(t.first_played_at, d.first_played_at),
            last_played_at = greatest(t.last_played_at, d.last_played_at)
        -- A stored total vouches for its track; a new one is looked up.
        WHEN NOT MATCHED AND EXISTS (SELECT 1 FROM tracks k WHERE k.track_id = d.track_id)
        THEN INSERT (user_id, track_id, rows, plays, listening_ms, first_played_at,
                     last_played_at)
            VALUES (d.user_id, d.track_id, d.rows, d.plays, d.listening_ms,
                    d.first_played_at, d.last_played_at)
        WHEN NOT MATCHED THEN INSERT (user_id, track_id, rows, plays, listening_ms)
            VALUES (d.user_id, playlog_missing_track(d.track_id), 0, 0, 0);
"""


def _rollup_function() -> str:
    function: str = previous._rollup_function()
    function = turns._replace_once(function, _OLD_DECLARE, _NEW_DECLARE)
    function = turns._replace_once(function, _OLD_USERS, _NEW_USERS)
    start = function.find(_TRACKS_START)
    end = function.find(_TRACKS_END, start)
    if start < 0 or end < 0:
        raise RuntimeError("an earlier rollup function changed; cannot find its track upsert")
    return function[:start] + _NEW_TRACKS + function[end:]


def upgrade() -> None:
    op.execute(MISSING_TRACK_FUNCTION)
    op.execute(_rollup_function())


def downgrade() -> None:
    op.execute(previous._rollup_function())
    op.execute("DROP FUNCTION playlog_missing_track(text)")
