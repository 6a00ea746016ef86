"""An inserted link leaves a track_lookup row alone when it names the artist already.

The importer writes artists, tracks and links in one statement, so when the tracks'
trigger writes a new track's lookup row, the track's primary artist is there to be
probed and the row is complete. The links' trigger, which fires after it, rewrote every
such row with the same values: a new row version (and index entry) for each linked track
of an import (the trigger took 0.94 s of a first import of a million plays, 0.24 s now).
It now skips rows that already name the artist, as the update branch did before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21
"""

import importlib
from collections.abc import Sequence

from alembic import op

previous = importlib.import_module("playlog.db.migrations.versions.0010_track_lookup")

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINKS_FUNCTION = """
CREATE OR REPLACE FUNCTION playlog_lookup_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE track_lookup l SET artist_id = a.artist_id, artist_name = a.name
        FROM changed c JOIN artists a ON a.artist_id = c.artist_id
        WHERE c.position = 0 AND l.track_id = c.track_id
            AND (l.artist_id, l.artist_name) IS DISTINCT FROM (a.artist_id, a.name);
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE track_lookup l SET artist_id = NULL, artist_name = NULL
        FROM changed c
        WHERE c.position = 0 AND l.track_id = c.track_id AND l.artist_id = c.artist_id;
    ELSE
        UPDATE track_lookup l SET artist_id = a.artist_id, artist_name = a.name
        FROM (SELECT track_id FROM changed UNION SELECT track_id FROM gone) c
        LEFT JOIN track_artists ta ON ta.track_id = c.track_id AND ta.position = 0
        LEFT JOIN artists a ON a.artist_id = ta.artist_id
        WHERE l.track_id = c.track_id
            AND (l.artist_id, l.artist_name) IS DISTINCT FROM (a.artist_id, a.name);
    END IF;
    RETURN NULL;
END $$;
"""


def _previous_links_function() -> str:
    (function,) = (f for f in previous.FUNCTIONS if "playlog_lookup_links()" in f)
    return str(function).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(LINKS_FUNCTION)


def downgrade() -> None:
    op.execute(_previous_links_function())
