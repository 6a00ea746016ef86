"""Plays lose their (user_id, track_id, played_at) index.

Every inserted play went into that index at a random place (its key starts with the
track, and a batch of plays names thousands of tracks), which cost an import of a
million plays about a quarter of its insert time. What read it has other ways now:

- a track's first and last play come from ``play_tracks``; the analytics queries that
  counted one track's plays through the index total the window's plays instead;
- the rollup's delete branch looked up a track's new first or last play when a delete
  removed it, one index probe per track. It now looks them up for all such tracks of a
  statement in one pass over the users' plays, and only when a bound moved (a delete
  that leaves every bound in place reads no plays).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

import importlib
from collections.abc import Sequence

from alembic import op

previous = importlib.import_module("playlog.db.migrations.versions.0007_delete_takes_turns")
first = importlib.import_module("playlog.db.migrations.versions.0005_plays_statement_checks")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_plays_user_id_track_id_played_at"

_COUNTED_C = first.COUNTED.format("c")
_COUNTED_P = first.COUNTED.format("p")
_OLD_START = "    UPDATE play_tracks t SET\n"
_OLD_END = "    WHERE t.user_id = d.user_id AND t.track_id = d.track_id;\n"
_NEW_TRACKS = f"""    WITH d AS MATERIALIZED (
        SELECT c.user_id, c.track_id, {first.TOTALS},
            min(c.played_at) FILTER (WHERE {_COUNTED_C}) AS first_removed,
            max(c.played_at) FILTER (WHERE {_COUNTED_C}) AS last_removed
        FROM changed c GROUP BY 1, 2
    ), moved AS MATERIALIZED (
        -- Tracks that keep plays but lost their first or last counted one.
        SELECT d.user_id, d.track_id FROM d
        JOIN play_tracks t ON t.user_id = d.user_id AND t.track_id = d.track_id
        WHERE t.rows > d.rows
            AND (d.first_removed <= t.first_played_at OR d.last_removed >= t.last_played_at)
    ), bounds AS (
        SELECT p.user_id, p.track_id,
            min(p.played_at) FILTER (WHERE {_COUNTED_P}) AS first_played_at,
            max(p.played_at) FILTER (WHERE {_COUNTED_P}) AS last_played_at
        FROM (SELECT DISTINCT user_id FROM moved) u
        JOIN plays p ON p.user_id = u.user_id
        WHERE (p.user_id, p.track_id) IN (SELECT user_id, track_id FROM moved)
        GROUP BY 1, 2
    )
    UPDATE play_tracks t SET
        rows = t.rows - d.rows,
        plays = t.plays - d.plays,
        listening_ms = t.listening_ms - d.listening_ms,
        first_played_at = CASE WHEN b.track_id IS NULL THEN t.first_played_at
            ELSE b.first_played_at END,
        last_played_at = CASE WHEN b.track_id IS NULL THEN t.last_played_at
            ELSE b.last_played_at END
    FROM d LEFT JOIN bounds b ON b.user_id = d.user_id AND b.track_id = d.track_id
    WHERE t.user_id = d.user_id AND t.track_id = d.track_id;
"""


def _rollup_function() -> str:
    function: str = previous._rollup_function()
    start = function.find(_OLD_START)
    end = function.find(_OLD_END, start)
    if start < 0 or end < 0 or function.count(_OLD_START) != 1:
        raise RuntimeError("an earlier rollup function changed; cannot find its track update")
    return function[:start] + _NEW_TRACKS + function[end + len(_OLD_END) :]


def upgrade() -> None:
    op.execute(_rollup_function())
    op.drop_index(INDEX, table_name="plays")


def downgrade() -> None:
    op.create_index(INDEX, "plays", ["user_id", "track_id", "played_at"])
    op.execute(previous._rollup_function())
