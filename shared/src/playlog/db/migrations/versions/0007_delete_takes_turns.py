"""Deleting plays takes turns with a change of the user's hour start, like inserting does.

0006 made inserts of plays lock their users ``FOR SHARE`` so that a rebuild of a user's
hour totals (a change of ``users.hour_start_minute``) and a write never overlap. The
delete branch of the same trigger also reads the user's minute, but locked nothing: a
delete running while a rebuild was open decremented buckets of the old minute, which the
rebuild had already replaced, and the user's totals stayed too high; an import that
deletes replaced rows and then inserts could deadlock with the rebuild. Deletes now take
the same lock first.

A deleted user's hour totals go with their plays in the cascade itself
(``playlog_user_deleted``), instead of a special case in the rollup for users that no
longer exist.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

import importlib
from collections.abc import Sequence

from alembic import op

previous = importlib.import_module("playlog.db.migrations.versions.0006_local_hour_buckets")
first = importlib.import_module("playlog.db.migrations.versions.0005_plays_statement_checks")

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELETE_BRANCH = "    -- DELETE.\n"
_LOCKED_DELETE_BRANCH = """    -- DELETE. Like an insert, wait for (and hold off) a change of the users' minute.
    PERFORM 1 FROM users u WHERE u.id IN (SELECT c.user_id FROM changed c) FOR SHARE OF u;
"""
_DROP_HOURS = """    DELETE FROM play_hours h USING (SELECT DISTINCT user_id FROM changed) u
    WHERE h.user_id = u.user_id AND h.rows <= 0;"""

USER_DELETED = """
CREATE OR REPLACE FUNCTION playlog_user_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM plays WHERE user_id = OLD.id;
    -- Without the user row the rollup cannot find their buckets' minute.
    DELETE FROM play_hours WHERE user_id = OLD.id;
    RETURN NULL;
END $$;
"""


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"an earlier function changed; cannot find {old.strip()!r}")
    return text.replace(old, new)


def _rollup_function() -> str:
    function: str = previous._rollup_function()
    function = _replace_once(function, _DELETE_BRANCH, _LOCKED_DELETE_BRANCH)
    return _replace_once(function, previous._NEW_DROP_HOURS, _DROP_HOURS)


def upgrade() -> None:
    op.execute(_rollup_function())
    op.execute(USER_DELETED)


def downgrade() -> None:
    op.execute(first.USER_DELETED.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.execute(previous._rollup_function())
