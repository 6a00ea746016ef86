"""Running totals of plays for analytics: play_hours, play_tracks, plays.ms_estimated.

Statement-level triggers on ``plays`` keep both tables in step with every insert and
delete, inside the writing transaction. A row trigger estimates the listening time of
plays without ``ms_played`` (API plays) when they are inserted. Existing rows are
backfilled here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The counting rule of DESIGN §6, in SQL over a row alias.
COUNTED = "({0}.ms_played IS NULL OR {0}.ms_played >= 30000)"

# played_at is the end of playback, so a play lasted at most the time since the previous
# play of the same user ended; without a previous play, the track's duration.
ESTIMATE_FUNCTION = """
CREATE FUNCTION playlog_estimate_ms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT CASE
        WHEN t.duration_ms IS NULL THEN NULL
        ELSE least(
            t.duration_ms::bigint,
            coalesce(
                (SELECT floor(extract(epoch FROM NEW.played_at - max(p.played_at)) * 1000)
                 FROM plays p
                 WHERE p.user_id = NEW.user_id AND p.played_at < NEW.played_at)::bigint,
                t.duration_ms::bigint))::integer
        END
    INTO NEW.ms_estimated
    FROM tracks t WHERE t.track_id = NEW.track_id;
    RETURN NEW;
END $$;
"""


# Totals of the rows aliased "c", grouped by user and hour or by user and track.
TOTALS = f"""count(*) AS rows,
        count(*) FILTER (WHERE {COUNTED.format("c")}) AS plays,
        coalesce(sum(coalesce(c.ms_played, c.ms_estimated, 0)), 0) AS listening_ms"""


ROLLUP_FUNCTION = f"""
CREATE FUNCTION playlog_rollup_plays() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO play_hours AS h
            (user_id, hour, rows, plays, listening_ms, estimated_ms, api_rows)
        SELECT c.user_id, date_trunc('hour', c.played_at, 'UTC'), {TOTALS},
            coalesce(sum(c.ms_estimated) FILTER (WHERE c.ms_played IS NULL), 0),
            count(*) FILTER (WHERE c.source = 'spotify_api')
        FROM changed c GROUP BY 1, 2
        ON CONFLICT (user_id, hour) DO UPDATE SET
            rows = h.rows + excluded.rows,
            plays = h.plays + excluded.plays,
            listening_ms = h.listening_ms + excluded.listening_ms,
            estimated_ms = h.estimated_ms + excluded.estimated_ms,
            api_rows = h.api_rows + excluded.api_rows;

        INSERT INTO play_tracks AS t
            (user_id, track_id, rows, plays, listening_ms, first_played_at, last_played_at)
        SELECT c.user_id, c.track_id, {TOTALS},
            min(c.played_at) FILTER (WHERE {COUNTED.format("c")}),
            max(c.played_at) FILTER (WHERE {COUNTED.format("c")})
        FROM changed c GROUP BY 1, 2
        ON CONFLICT (user_id, track_id) DO UPDATE SET
            rows = t.rows + excluded.rows,
            plays = t.plays + excluded.plays,
            listening_ms = t.listening_ms + excluded.listening_ms,
            first_played_at = least(t.first_played_at, excluded.first_played_at),
            last_played_at = greatest(t.last_played_at, excluded.last_played_at);
        RETURN NULL;
    END IF;

    -- DELETE. Only UPDATE here, never INSERT: when a user is deleted, the cascade may
    -- already have removed their totals, and an insert would fail its foreign key.
    UPDATE play_hours h SET
        rows = h.rows - d.rows,
        plays = h.plays - d.plays,
        listening_ms = h.listening_ms - d.listening_ms,
        estimated_ms = h.estimated_ms - d.estimated_ms,
        api_rows = h.api_rows - d.api_rows
    FROM (
        SELECT c.user_id, date_trunc('hour', c.played_at, 'UTC') AS hour, {TOTALS},
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
        -- A removed first or last play moves the bound: look it up again.
        first_played_at = CASE WHEN d.first_removed <= t.first_played_at THEN
            (SELECT min(p.played_at) FROM plays p
             WHERE p.user_id = t.user_id AND p.track_id = t.track_id
               AND {COUNTED.format("p")})
            ELSE t.first_played_at END,
        last_played_at = CASE WHEN d.last_removed >= t.last_played_at THEN
            (SELECT max(p.played_at) FROM plays p
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

BACKFILL = (
    """
UPDATE plays p SET ms_estimated = e.estimate
FROM (
    SELECT p.id, CASE WHEN t.duration_ms IS NULL THEN NULL ELSE least(
        t.duration_ms::bigint,
        coalesce(floor(extract(epoch FROM p.played_at - lag(p.played_at)
            OVER (PARTITION BY p.user_id ORDER BY p.played_at)) * 1000)::bigint,
            t.duration_ms::bigint))::integer END AS estimate,
        p.ms_played
    FROM plays p JOIN tracks t ON t.track_id = p.track_id
) e
WHERE p.id = e.id AND e.ms_played IS NULL
""",
    f"""
INSERT INTO play_hours (user_id, hour, rows, plays, listening_ms, estimated_ms, api_rows)
SELECT c.user_id, date_trunc('hour', c.played_at, 'UTC'), {TOTALS},
    coalesce(sum(c.ms_estimated) FILTER (WHERE c.ms_played IS NULL), 0),
    count(*) FILTER (WHERE c.source = 'spotify_api')
FROM plays c GROUP BY 1, 2
""",
    f"""
INSERT INTO play_tracks
    (user_id, track_id, rows, plays, listening_ms, first_played_at, last_played_at)
SELECT c.user_id, c.track_id, {TOTALS},
    min(c.played_at) FILTER (WHERE {COUNTED.format("c")}),
    max(c.played_at) FILTER (WHERE {COUNTED.format("c")})
FROM plays c GROUP BY 1, 2
""",
)

TRIGGERS = (
    """
CREATE TRIGGER plays_estimate_ms BEFORE INSERT ON plays
    FOR EACH ROW WHEN (NEW.ms_played IS NULL AND NEW.ms_estimated IS NULL)
    EXECUTE FUNCTION playlog_estimate_ms()""",
    """
CREATE TRIGGER plays_rollup_insert AFTER INSERT ON plays
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION playlog_rollup_plays()""",
    """
CREATE TRIGGER plays_rollup_delete AFTER DELETE ON plays
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION playlog_rollup_plays()""",
    # Rows are only ever inserted or deleted; an UPDATE that changed counted columns would
    # silently skew the totals, so it is refused.
    """
CREATE FUNCTION playlog_plays_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'plays rows are insert-only: delete and insert instead of updating %',
        'user_id, played_at, track_id, ms_played, ms_estimated or source';
END $$""",
    """
CREATE TRIGGER plays_immutable BEFORE UPDATE OF
    user_id, played_at, track_id, ms_played, ms_estimated, source ON plays
    FOR EACH ROW EXECUTE FUNCTION playlog_plays_immutable()""",
)


def upgrade() -> None:
    op.add_column("plays", sa.Column("ms_estimated", sa.Integer(), nullable=True))
    op.create_index(
        "ix_plays_user_id_track_id_played_at", "plays", ["user_id", "track_id", "played_at"]
    )
    op.create_table(
        "play_hours",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.Column("listening_ms", sa.BigInteger(), nullable=False),
        sa.Column("estimated_ms", sa.BigInteger(), nullable=False),
        sa.Column("api_rows", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_play_hours_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "hour", name="pk_play_hours"),
    )
    op.create_table(
        "play_tracks",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("track_id", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.Column("listening_ms", sa.BigInteger(), nullable=False),
        sa.Column("first_played_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_played_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_play_tracks_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.track_id"],
            name="fk_play_tracks_track_id_tracks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "track_id", name="pk_play_tracks"),
    )
    op.execute(ESTIMATE_FUNCTION)
    op.execute(ROLLUP_FUNCTION)
    for statement in (*BACKFILL, *TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    for trigger in (
        "plays_immutable",
        "plays_rollup_delete",
        "plays_rollup_insert",
        "plays_estimate_ms",
    ):
        op.execute(f"DROP TRIGGER {trigger} ON plays")
    for function in ("playlog_plays_immutable", "playlog_rollup_plays", "playlog_estimate_ms"):
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("play_tracks")
    op.drop_table("play_hours")
    op.drop_index("ix_plays_user_id_track_id_played_at", table_name="plays")
    op.drop_column("plays", "ms_estimated")
