"""References of plays checked once per statement instead of once per row.

A foreign key runs one lookup per inserted row: for an import of a million plays, two
million lookups (user and track) took about 40 % of the insert time, and the running
totals' own keys, one lookup per upserted total, another 15 %. This migration replaces
those keys with checks of the same strength made once per statement by the triggers that
already run then:

- Inserting plays: every track must exist (one anti-join over the inserted rows), and
  every user must exist; the users are locked ``FOR KEY SHARE`` like a foreign key
  does, so a user deleted concurrently either waits for the insert or makes it fail.
- Deleting a user deletes their plays, after the user row is gone (so an insert that
  was in flight has committed and is seen), and with them their totals: the cascade.
- Deleting tracks that any play still references fails: the restriction. The deleting
  statement first waits for every transaction that is writing plays, so none can add a
  reference it would not see.
- Changing a user's or a track's id is refused; nothing in Playlog does it.

Violations raise SQLSTATE 23503 (foreign_key_violation), as the keys did. The totals now
bucket hours with ``date_bin`` (no time-zone conversion per row), and recompute a track's
first/last play on delete only while it keeps plays.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

import importlib
from collections.abc import Sequence

from alembic import op

previous = importlib.import_module("playlog.db.migrations.versions.0004_play_rollups")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTED = previous.COUNTED
TOTALS = previous.TOTALS
HOUR = "date_bin('1 hour', c.played_at, timestamptz 'epoch')"

ROLLUP_FUNCTION = f"""
CREATE OR REPLACE FUNCTION playlog_rollup_plays() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
    users_wanted bigint;
    users_locked bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(DISTINCT c.user_id) INTO users_wanted FROM changed c;
        SELECT count(*) INTO users_locked FROM (
            SELECT 1 FROM users u WHERE u.id IN (SELECT c.user_id FROM changed c)
            FOR KEY SHARE OF u) locked;
        IF users_locked <> users_wanted THEN
            RAISE EXCEPTION 'plays reference a user that does not exist'
                USING ERRCODE = 'foreign_key_violation';
        END IF;

        INSERT INTO play_hours AS h
            (user_id, hour, rows, plays, listening_ms, estimated_ms, api_rows)
        SELECT c.user_id, {HOUR}, {TOTALS},
            coalesce(sum(c.ms_estimated) FILTER (WHERE c.ms_played IS NULL), 0),
            count(*) FILTER (WHERE c.source = 'spotify_api')
        FROM changed c GROUP BY 1, 2
        ON CONFLICT (user_id, hour) DO UPDATE SET
            rows = h.rows + excluded.rows,
            plays = h.plays + excluded.plays,
            listening_ms = h.listening_ms + excluded.listening_ms,
            estimated_ms = h.estimated_ms + excluded.estimated_ms,
            api_rows = h.api_rows + excluded.api_rows;

        -- The tracks are checked on the per-track totals: one lookup per distinct track.
        -- The upsert runs to completion whatever the outer query reads, and a missing
        -- track undoes the whole statement.
        WITH per_track AS MATERIALIZED (
            SELECT c.user_id, c.track_id, {TOTALS},
                min(c.played_at) FILTER (WHERE {COUNTED.format("c")}) AS first_played_at,
                max(c.played_at) FILTER (WHERE {COUNTED.format("c")}) AS last_played_at
            FROM changed c GROUP BY 1, 2
        ), upsert AS (
            INSERT INTO play_tracks AS t
                (user_id, track_id, rows, plays, listening_ms, first_played_at, last_played_at)
            SELECT * FROM per_track
            ON CONFLICT (user_id, track_id) DO UPDATE SET
                rows = t.rows + excluded.rows,
                plays = t.plays + excluded.plays,
                listening_ms = t.listening_ms + excluded.listening_ms,
                first_played_at = least(t.first_played_at, excluded.first_played_at),
                last_played_at = greatest(t.last_played_at, excluded.last_played_at)
        )
        SELECT p.track_id INTO missing FROM per_track p
        WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.track_id = p.track_id) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'plays reference a track that does not exist: %', missing
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;

    -- DELETE.
    UPDATE play_hours h SET
        rows = h.rows - d.rows,
        plays = h.plays - d.plays,
        listening_ms = h.listening_ms - d.listening_ms,
        estimated_ms = h.estimated_ms - d.estimated_ms,
        api_rows = h.api_rows - d.api_rows
    FROM (
        SELECT c.user_id, {HOUR} AS hour, {TOTALS},
            coalesce(sum(c.ms_estimated) FILTER (WHERE c.ms_played IS NULL), 0)
                AS estimated_ms,
            count(*) FILTER (WHERE c.source = 'spotify_api') AS api_rows
        FROM changed c GROUP BY 1, 2
    ) d
    WHERE h.user_id = d.user_id AND h.hour = d.hour;
    DELETE FROM play_hours h USING (SELECT DISTINCT user_id FROM changed) u
    WHERE h.user_id = u.user_id AND h.rows <= 0;

    UPDATE play_tracks t SET
        rows = t.rows - d.rows,
        plays = t.plays - d.plays,
        listening_ms = t.listening_ms - d.listening_ms,
        -- A removed first or last play moves the bound: look it up again, unless no
        -- play of the track is left (the row goes below).
        first_played_at = CASE WHEN t.rows > d.rows AND d.first_removed <= t.first_played_at
            THEN (SELECT min(p.played_at) FROM plays p
                  WHERE p.user_id = t.user_id AND p.track_id = t.track_id
                    AND {COUNTED.format("p")})
            ELSE t.first_played_at END,
        last_played_at = CASE WHEN t.rows > d.rows AND d.last_removed >= t.last_played_at
            THEN (SELECT max(p.played_at) FROM plays p
                  WHERE p.user_id = t.user_id AND p.track_id = t.track_id
                    AND {COUNTED.format("p")})
            ELSE t.last_played_at END
    FROM (
        SELECT c.user_id, c.track_id, {TOTALS},
            min(c.played_at) FILTER (WHERE {COUNTED.format("c")}) AS first_removed,
            max(c.played_at) FILTER (WHERE {COUNTED.format("c")}) AS last_removed
        FROM changed c GROUP BY 1, 2
    ) d
    WHERE t.user_id = d.user_id AND t.track_id = d.track_id;
    DELETE FROM play_tracks t USING (SELECT DISTINCT user_id FROM changed) u
    WHERE t.user_id = u.user_id AND t.rows <= 0;
    RETURN NULL;
END $$;
"""

# A user's plays go after the user row is deleted: an insert holding the row (FOR KEY
# SHARE) has committed by then, and this statement's fresh snapshot sees its plays.
USER_DELETED = """
CREATE FUNCTION playlog_user_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM plays WHERE user_id = OLD.id;
    RETURN NULL;
END $$;
"""
TRACKS_DELETED = """
CREATE FUNCTION playlog_tracks_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kept text;
BEGIN
    -- Wait for every transaction writing plays, and keep new ones out until this one
    -- ends: no play can reference these tracks unseen.
    LOCK TABLE plays IN SHARE MODE;
    -- Every user's plays of a track are counted in play_tracks (same transaction).
    SELECT g.track_id INTO kept FROM gone g
    WHERE EXISTS (SELECT 1 FROM play_tracks pt WHERE pt.track_id = g.track_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'track % is still referenced by plays', kept
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
"""
ID_UNCHANGED = """
CREATE FUNCTION playlog_id_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the id of a row in % never changes', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation';
END $$;
"""

TRIGGERS = (
    """
CREATE TRIGGER users_delete_plays AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION playlog_user_deleted()""",
    """
CREATE TRIGGER tracks_delete_restrict AFTER DELETE ON tracks
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION playlog_tracks_deleted()""",
    """
CREATE TRIGGER users_id_unchanged BEFORE UPDATE OF id ON users
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION playlog_id_unchanged()""",
    """
CREATE TRIGGER tracks_id_unchanged BEFORE UPDATE OF track_id ON tracks
    FOR EACH ROW WHEN (OLD.track_id IS DISTINCT FROM NEW.track_id)
    EXECUTE FUNCTION playlog_id_unchanged()""",
)
FOREIGN_KEYS = (
    ("plays", "fk_plays_user_id_users", "user_id", "users", "id", "CASCADE"),
    ("plays", "fk_plays_track_id_tracks", "track_id", "tracks", "track_id", "RESTRICT"),
    ("play_hours", "fk_play_hours_user_id_users", "user_id", "users", "id", "CASCADE"),
    ("play_tracks", "fk_play_tracks_user_id_users", "user_id", "users", "id", "CASCADE"),
    ("play_tracks", "fk_play_tracks_track_id_tracks", "track_id", "tracks", "track_id", "CASCADE"),
)


def upgrade() -> None:
    for table, name, *_ in FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")
    op.execute(ROLLUP_FUNCTION)
    for statement in (USER_DELETED, TRACKS_DELETED, ID_UNCHANGED, *TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    for trigger, table in (
        ("tracks_id_unchanged", "tracks"),
        ("users_id_unchanged", "users"),
        ("tracks_delete_restrict", "tracks"),
        ("users_delete_plays", "users"),
    ):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in ("playlog_id_unchanged", "playlog_tracks_deleted", "playlog_user_deleted"):
        op.execute(f"DROP FUNCTION {function}()")
    op.execute(previous.ROLLUP_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    for table, name, column, referred, key, ondelete in FOREIGN_KEYS:
        op.create_foreign_key(name, table, referred, [column], [key], ondelete=ondelete)
