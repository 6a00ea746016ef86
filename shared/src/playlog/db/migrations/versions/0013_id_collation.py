"""Track and artist ids compare byte by byte (``COLLATE "C"``).

Ids are Spotify's base62 ids and ``local:`` + hex digests: ASCII, with nothing to sort by
a language's rules. In the database's default collation every comparison of two ids (an
index probe, a sort, a join) went through the locale's rules; in "C" it is a plain byte
comparison, and sorts can use abbreviated keys. A first import of a million plays into a
C.UTF-8 database: 11.2-12.2 s before, 10.8-11.4 s after (three alternating runs);
databases in a language's collation (en_US.UTF-8 is the postgres image's default) spent
more on each comparison.

The columns keep their values; their indexes are rebuilt. Their order becomes byte order
(upper case before lower case): the same as before in a C or C.UTF-8 database, a change
in a language's collation, where ties between tracks listed by the analytics, and which
of an artist's Spotify ids is reported for a name shared by several, now follow it. The
two triggers that name ``track_id`` and the links' foreign keys are dropped and made
again around the change, as PostgreSQL requires.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-21
"""

import importlib
from collections.abc import Sequence

from alembic import op

rollups = importlib.import_module("playlog.db.migrations.versions.0004_play_rollups")
checks = importlib.import_module("playlog.db.migrations.versions.0005_plays_statement_checks")

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("artists", "artist_id"),
    ("tracks", "track_id"),
    ("plays", "track_id"),
    ("play_tracks", "track_id"),
    ("track_artists", "track_id"),
    ("track_artists", "artist_id"),
    ("track_lookup", "track_id"),
    ("track_lookup", "artist_id"),
)
# (name, table, the statement that makes it)
TRIGGERS = tuple(
    (name, table, next(t for t in definitions if f"TRIGGER {name} " in t))
    for name, table, definitions in (
        ("plays_immutable", "plays", rollups.TRIGGERS),
        ("tracks_id_unchanged", "tracks", checks.TRIGGERS),
    )
)
# (name, column, referred table)
LINK_KEYS = (
    ("fk_track_artists_track_id_tracks", "track_id", "tracks"),
    ("fk_track_artists_artist_id_artists", "artist_id", "artists"),
)


def _collate(collation: str) -> None:
    for name, table, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for name, _, _ in LINK_KEYS:
        op.drop_constraint(name, "track_artists", type_="foreignkey")
    for table, column in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE text COLLATE "{collation}"')
    for name, column, referred in LINK_KEYS:
        op.create_foreign_key(
            name, "track_artists", referred, [column], [column], ondelete="CASCADE"
        )
    for _, _, statement in TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
