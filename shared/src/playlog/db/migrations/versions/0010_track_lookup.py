"""track_lookup: one narrow row per track with what analytics join on.

Every music list filters by kind and names a track's primary artist. Read from the
catalog, that is three joins (tracks, track_artists at position 0, artists) over every
track of a window; the 90-day top artists of a user with a million plays spent 40 of its
51 ms there. ``track_lookup`` holds kind, name, album, show and the primary artist of
each track in one row, kept by statement-level triggers on the three catalog tables, so
writers (the collector, the importer, tests) keep it without knowing it exists.

``search_text`` is the four names lowercased once, at write time, for history_search:
``lower()`` on every name of the catalogue at query time cost a search 57 ms, the stored
column 14 ms. The names are joined by a control character, which a query never contains,
so a match never spans two of them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = (
    # Tracks: a new track gets its row; an update copies the columns; a delete removes the
    # row. Links name an existing track, so they normally come later and fill the artist
    # in; one statement may write both (two writable CTEs), so a new track's primary
    # artist is probed too: one index probe each (LIMIT 1 keeps the planner from a join
    # that reads every link, which cost a first import of a million plays 6 s; EXECUTE
    # plans it for the tables as they are, not as they were at the session's first
    # import member).
    """
CREATE FUNCTION playlog_lookup_tracks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE '
        INSERT INTO track_lookup
            (track_id, kind, name, album_name, show_name, artist_id, artist_name)
        SELECT c.track_id, c.kind, c.name, c.album_name, c.show_name, p.artist_id, p.name
        FROM changed c
        LEFT JOIN LATERAL (
            SELECT a.artist_id, a.name FROM track_artists ta
            JOIN artists a ON a.artist_id = ta.artist_id
            WHERE ta.track_id = c.track_id AND ta.position = 0 LIMIT 1) p ON true';
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE track_lookup l SET
            kind = c.kind, name = c.name, album_name = c.album_name, show_name = c.show_name
        FROM changed c
        WHERE l.track_id = c.track_id
            AND (l.kind, l.name, l.album_name, l.show_name)
                IS DISTINCT FROM (c.kind, c.name, c.album_name, c.show_name);
    ELSE
        DELETE FROM track_lookup l USING changed c WHERE l.track_id = c.track_id;
    END IF;
    RETURN NULL;
END $$;
""",
    # Links: an inserted link at position 0 is the track's primary artist (a track has
    # one position 0); a deleted one leaves none. An update, which no writer does, may
    # move positions about: the tracks on either side of it are looked up again.
    """
CREATE FUNCTION playlog_lookup_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE track_lookup l SET artist_id = a.artist_id, artist_name = a.name
        FROM changed c JOIN artists a ON a.artist_id = c.artist_id
        WHERE c.position = 0 AND l.track_id = c.track_id;
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
""",
    # Artists: a renamed artist is renamed in the rows that credit them (rare enough to
    # read the table: an index on artist_id would cost every import its upkeep). No
    # writer renames artists; a rename committed while another transaction links the
    # artist to a new track would leave that track's row with the old name.
    """
CREATE FUNCTION playlog_lookup_artists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE track_lookup l SET artist_name = c.name
    FROM changed c
    WHERE l.artist_id = c.artist_id AND l.artist_name IS DISTINCT FROM c.name;
    RETURN NULL;
END $$;
""",
    # TRUNCATE fires no row or transition-table triggers: emptied tracks empty the
    # lookup, emptied links (also by TRUNCATE artists CASCADE) clear every artist.
    """
CREATE FUNCTION playlog_lookup_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'tracks' THEN
        DELETE FROM track_lookup;
    ELSE
        UPDATE track_lookup SET artist_id = NULL, artist_name = NULL
        WHERE artist_id IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;
""",
)
_NEW = "REFERENCING NEW TABLE AS changed"
_OLD = "REFERENCING OLD TABLE AS changed"

# (trigger, table, event, transition tables, function)
TRIGGERS = (
    ("tracks_lookup_insert", "tracks", "INSERT", _NEW, "playlog_lookup_tracks"),
    ("tracks_lookup_update", "tracks", "UPDATE", _NEW, "playlog_lookup_tracks"),
    ("tracks_lookup_delete", "tracks", "DELETE", _OLD, "playlog_lookup_tracks"),
    ("tracks_lookup_truncate", "tracks", "TRUNCATE", "", "playlog_lookup_truncated"),
    ("track_artists_lookup_insert", "track_artists", "INSERT", _NEW, "playlog_lookup_links"),
    (
        "track_artists_lookup_update",
        "track_artists",
        "UPDATE",
        "REFERENCING OLD TABLE AS gone NEW TABLE AS changed",
        "playlog_lookup_links",
    ),
    ("track_artists_lookup_delete", "track_artists", "DELETE", _OLD, "playlog_lookup_links"),
    (
        "track_artists_lookup_truncate",
        "track_artists",
        "TRUNCATE",
        "",
        "playlog_lookup_truncated",
    ),
    ("artists_lookup_update", "artists", "UPDATE", _NEW, "playlog_lookup_artists"),
)

# Lowercased name, album, show and primary artist, joined by the unit separator U+001F.
SEARCH_TEXT = (
    "lower(name || chr(31) || coalesce(album_name, '') || chr(31) || coalesce(show_name, '')"
    " || chr(31) || coalesce(artist_name, ''))"
)

BACKFILL = """
INSERT INTO track_lookup (track_id, kind, name, album_name, show_name, artist_id, artist_name)
SELECT t.track_id, t.kind, t.name, t.album_name, t.show_name, a.artist_id, a.name
FROM tracks t
LEFT JOIN track_artists ta ON ta.track_id = t.track_id AND ta.position = 0
LEFT JOIN artists a ON a.artist_id = ta.artist_id
"""


def upgrade() -> None:
    op.create_table(
        "track_lookup",
        sa.Column("track_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("album_name", sa.Text(), nullable=True),
        sa.Column("show_name", sa.Text(), nullable=True),
        sa.Column("artist_id", sa.Text(), nullable=True),
        sa.Column("artist_name", sa.Text(), nullable=True),
        sa.Column("search_text", sa.Text(), sa.Computed(SEARCH_TEXT, persisted=True)),
        sa.PrimaryKeyConstraint("track_id", name=op.f("pk_track_lookup")),
    )
    for function in FUNCTIONS:
        op.execute(function)
    for trigger, table, event, transition, function in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {trigger} AFTER {event} ON {table} {transition}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    op.execute(BACKFILL)


def downgrade() -> None:
    for trigger, table, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in dict.fromkeys(function for *_, function in TRIGGERS):
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("track_lookup")
