"""Hour totals that start where the user's local hours start.

``play_hours`` bucketed plays by UTC hour, which are local hours only in zones a whole
number of hours from UTC. A user in Asia/Kolkata (+05:30), Asia/Kathmandu (+05:45),
America/St_Johns (-03:30) or Australia/Adelaide (+09:30) had every heatmap, day list
and total computed from raw plays instead: about four times slower over all time.

Every zone offset in use is a multiple of 15 minutes, so a user's local hours start at
minute 0, 15, 30 or 45 of a UTC hour. ``users.hour_start_minute`` holds that minute
(the application sets it from the user's time zone) and the totals are bucketed from it.
Changing it rebuilds the user's hour totals from their plays, in the same transaction.

Writers of plays now lock their users ``FOR SHARE`` instead of ``FOR KEY SHARE``: a
change of the minute (an UPDATE of the user) waits for them, and they for it, so no
insert can add buckets of the old minute after the rebuild.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

import importlib
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

previous = importlib.import_module("playlog.db.migrations.versions.0005_plays_statement_checks")

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTED = previous.COUNTED
TOTALS = previous.TOTALS
# The hour bucket of the row aliased "c" for the user aliased "u".
HOUR = "date_bin('1 hour', c.played_at, timestamptz 'epoch' + u.hour_start_minute * interval '1 minute')"
HOUR_COLUMNS = f"""{TOTALS},
            coalesce(sum(c.ms_estimated) FILTER (WHERE c.ms_played IS NULL), 0)
                AS estimated_ms,
            count(*) FILTER (WHERE c.source = 'spotify_api') AS api_rows"""

# The rest of 0005's function is kept as it was: only the insert branch's user lock and
# the two hour statements change.
_OLD_LOCK = "FOR KEY SHARE OF u) locked;"
_OLD_INSERT_HOURS = f"""        SELECT c.user_id, {previous.HOUR}, {TOTALS},
            coalesce(sum(c.ms_estimated) FILTER (WHERE c.ms_played IS NULL), 0),
            count(*) FILTER (WHERE c.source = 'spotify_api')
        FROM changed c GROUP BY 1, 2"""
_OLD_DELETE_HOURS = f"""        SELECT c.user_id, {previous.HOUR} AS hour, {TOTALS},
            coalesce(sum(c.ms_estimated) FILTER (WHERE c.ms_played IS NULL), 0)
                AS estimated_ms,
            count(*) FILTER (WHERE c.source = 'spotify_api') AS api_rows
        FROM changed c GROUP BY 1, 2"""
_OLD_DROP_HOURS = """    DELETE FROM play_hours h USING (SELECT DISTINCT user_id FROM changed) u
    WHERE h.user_id = u.user_id AND h.rows <= 0;"""
_NEW_HOURS = f"""        SELECT c.user_id, {HOUR} AS hour, {HOUR_COLUMNS}
        FROM changed c JOIN users u ON u.id = c.user_id GROUP BY 1, 2"""
# A deleted user's plays go after the user row (playlog_user_deleted): their buckets
# cannot be found without it, and every one of them goes.
_NEW_DROP_HOURS = """    DELETE FROM play_hours h USING (SELECT DISTINCT user_id FROM changed) c
    WHERE h.user_id = c.user_id
        AND (h.rows <= 0 OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id));"""


def _rollup_function() -> str:
    function: str = previous.ROLLUP_FUNCTION
    for old, new in (
        (_OLD_LOCK, "FOR SHARE OF u) locked;"),
        (_OLD_INSERT_HOURS, _NEW_HOURS),
        (_OLD_DELETE_HOURS, _NEW_HOURS),
        (_OLD_DROP_HOURS, _NEW_DROP_HOURS),
    ):
        if function.count(old) != 1:
            raise RuntimeError(f"0005's rollup function changed; cannot find {old.strip()!r}")
        function = function.replace(old, new)
    return function


REBUILD_FUNCTION = f"""
CREATE FUNCTION playlog_rebuild_hours() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM play_hours WHERE user_id = NEW.id;
    INSERT INTO play_hours
        (user_id, hour, rows, plays, listening_ms, estimated_ms, api_rows)
    SELECT c.user_id, {HOUR.replace("u.hour_start_minute", "NEW.hour_start_minute")},
        {HOUR_COLUMNS}
    FROM plays c WHERE c.user_id = NEW.id GROUP BY 1, 2;
    RETURN NULL;
END $$;
"""
REBUILD_TRIGGER = """
CREATE TRIGGER users_rebuild_hours AFTER UPDATE OF hour_start_minute ON users
    FOR EACH ROW WHEN (OLD.hour_start_minute IS DISTINCT FROM NEW.hour_start_minute)
    EXECUTE FUNCTION playlog_rebuild_hours()"""


def zone_hour_start(name: str) -> int:
    """The minute past the UTC hour at which local hours of zone ``name`` start now
    (kept here rather than imported: a migration must not change with the application)."""
    offset = datetime.now(UTC).astimezone(ZoneInfo(name)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    return -minutes % 60


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("hour_start_minute", sa.SmallInteger(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_users_hour_start_minute_valid"), "users", "hour_start_minute IN (0, 15, 30, 45)"
    )
    op.execute(_rollup_function())
    op.execute(REBUILD_FUNCTION)
    op.execute(REBUILD_TRIGGER)
    connection = op.get_bind()
    for user_id, zone in connection.execute(sa.text("SELECT id, timezone FROM users")).all():
        try:
            minute = zone_hour_start(zone)
        except (LookupError, ValueError):  # a zone this Python does not know: UTC hours
            continue
        if minute in (15, 30, 45):
            connection.execute(
                sa.text("UPDATE users SET hour_start_minute = :m WHERE id = :id"),
                {"m": minute, "id": user_id},
            )


def downgrade() -> None:
    op.execute("UPDATE users SET hour_start_minute = 0 WHERE hour_start_minute <> 0")
    op.execute("DROP TRIGGER users_rebuild_hours ON users")
    op.execute("DROP FUNCTION playlog_rebuild_hours()")
    op.execute(previous.ROLLUP_FUNCTION)
    op.drop_constraint(op.f("ck_users_hour_start_minute_valid"), "users", type_="check")
    op.drop_column("users", "hour_start_minute")
