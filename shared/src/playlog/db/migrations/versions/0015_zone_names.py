"""Users' zones are names of the IANA database itself.

Python opens more names than that: copies under ``posix/`` (the same rules) and
``right/`` (the same rules counting leap seconds, which PostgreSQL's ``AT TIME ZONE``
honours and Python does not: 27 seconds off, so every hour total, which starts on the
hour, landed in the hour before), the host's ``localtime`` (whatever zone the machine is
set to, which may differ between the api's and the database's hosts) and ``Factory`` (no
place). They are refused now (``playlog.users.validate_timezone``); a user stored with
one gets the zone it copies, or UTC for the last two (their hour totals are rebuilt by
the trigger of migration 0006 when the minute their hours start at changes).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE users SET timezone = substr(timezone, strpos(timezone, '/') + 1)"
        " WHERE timezone LIKE 'posix/%' OR timezone LIKE 'right/%'"
    )
    op.execute(
        "UPDATE users SET timezone = 'UTC', hour_start_minute = 0"
        " WHERE timezone IN ('localtime', 'Factory')"
    )


def downgrade() -> None:
    # The names replaced are not kept; the zones they stand for are the same.
    pass
