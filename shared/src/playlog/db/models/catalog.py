"""What was played: tracks (also podcast episodes and audiobook chapters) and artists."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Computed,
    ForeignKey,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import (
    ID_TEXT,
    Base,
    created_at_column,
    one_of,
    updated_at_column,
)

TRACK_KINDS = ("track", "episode", "audiobook")
# track_lookup.search_text: lowercased name, album, show and primary artist, joined by
# U+001F, a character no search text contains, so a match never spans two names.
SEARCH_TEXT = (
    "lower(name || chr(31) || coalesce(album_name, '') || chr(31) || coalesce(show_name, '')"
    " || chr(31) || coalesce(artist_name, ''))"
)
SOURCES = ("spotify_api", "import_zip")


class Track(Base):
    __tablename__ = "tracks"
    __table_args__ = (one_of("kind", TRACK_KINDS), one_of("source", SOURCES))

    # A Spotify id, or "local:" + sha1(artist, track, album) when an export row has no URI.
    track_id: Mapped[str] = mapped_column(ID_TEXT, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, server_default="track")
    name: Mapped[str] = mapped_column(Text)
    album_id: Mapped[str | None] = mapped_column(Text)
    album_name: Mapped[str | None] = mapped_column(Text)
    show_name: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    uri: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class Artist(Base):
    __tablename__ = "artists"

    artist_id: Mapped[str] = mapped_column(ID_TEXT, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class TrackArtist(Base):
    __tablename__ = "track_artists"
    __table_args__ = (
        UniqueConstraint("track_id", "position"),
        CheckConstraint("position >= 0", name="position_not_negative"),
    )

    track_id: Mapped[str] = mapped_column(
        ForeignKey("tracks.track_id", ondelete="CASCADE"), primary_key=True
    )
    artist_id: Mapped[str] = mapped_column(
        ForeignKey("artists.artist_id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # 0 is the primary artist.
    position: Mapped[int] = mapped_column(SmallInteger)


class TrackLookup(Base):
    """One narrow row per track with what analytics join on: kind, names and the primary
    artist (position 0). Kept by triggers on tracks, track_artists and artists (migration
    0010); nothing writes it directly."""

    __tablename__ = "track_lookup"

    track_id: Mapped[str] = mapped_column(ID_TEXT, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    album_name: Mapped[str | None] = mapped_column(Text)
    show_name: Mapped[str | None] = mapped_column(Text)
    artist_id: Mapped[str | None] = mapped_column(ID_TEXT)
    artist_name: Mapped[str | None] = mapped_column(Text)
    # Generated: the four names lowercased, joined by U+001F (history_search matches it).
    search_text: Mapped[str | None] = mapped_column(Text, Computed(SEARCH_TEXT, persisted=True))
