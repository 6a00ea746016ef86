"""Storing a page of recently-played items: catalog upserts and de-duplicated plays.

Database work is proportional to the page: the catalog rows it names, and the plays of
the same user within the page's time span (for the cross-source rule), read through the
primary key (user_id, played_at, track_id).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import Artist, Base, Play, Track, TrackArtist
from playlog.history.identity import (
    API_SOURCE,
    MAX_MATCH_WINDOW,
    PlayIdentity,
    local_artist_id,
    local_track_id,
    match_one_to_one,
)
from playlog.history.locks import LOCK_SQL, history_lock_key
from playlog.spotify.models import PlayHistory
from playlog.spotify.models import Track as SpotifyTrack

SOURCE = API_SOURCE

_tables = Base.metadata.tables
_plays, _tracks = _tables["plays"], _tables["tracks"]
_INSERT_PLAYS = insert(_plays).on_conflict_do_nothing().returning(_plays.c.played_at)
_INSERT_ARTISTS = insert(_tables["artists"]).on_conflict_do_nothing()
_INSERT_LINKS = insert(_tables["track_artists"]).on_conflict_do_nothing()
# An export may have stored the track first without Spotify's album id or duration: the
# API fills those in and never overwrites a known value.
_track_insert = insert(_tracks)
_FILLED_IN = ("album_id", "album_name", "duration_ms", "uri")
_UPSERT_TRACKS = _track_insert.on_conflict_do_update(
    index_elements=[_tracks.c.track_id],
    set_={
        column: func.coalesce(_tracks.c[column], _track_insert.excluded[column])
        for column in _FILLED_IN
    },
    # Only when a gap can actually be filled: complete rows (and local files, which
    # never get an album id) are not rewritten on every poll.
    where=or_(
        *(
            and_(_tracks.c[column].is_(None), _track_insert.excluded[column].is_not(None))
            for column in _FILLED_IN
        )
    ),
)


@dataclass
class PageResult:
    fetched: int = 0
    inserted: int = 0
    # Already stored from the API (a page fetched twice, e.g. after a crash).
    duplicates: int = 0
    # Already stored from an export: the richer row is kept (DESIGN §6).
    cross_source: int = 0


def track_id_of(track: SpotifyTrack) -> str:
    if track.id:
        return track.id
    album = track.album.name if track.album else None
    return local_track_id(_primary_artist(track), track.name, album)


def _primary_artist(track: SpotifyTrack) -> str | None:
    return track.artists[0].name if track.artists else None


async def store_page(
    session: AsyncSession, user_id: uuid.UUID, items: Sequence[PlayHistory]
) -> PageResult:
    """Upsert the catalog rows of ``items`` and insert their plays; the caller commits."""
    result = PageResult(fetched=len(items))
    if not items:
        return result
    # Takes turns with an import of the same user (playlog.history.locks); the driver's
    # own placeholders, as the import spells it.
    connection = await session.connection()
    await connection.exec_driver_sql(LOCK_SQL, history_lock_key(user_id))
    await _upsert_catalog(session, [item.track for item in items])
    fresh = await _without_known_plays(session, user_id, items, result)
    if fresh:
        rows = [
            {
                "user_id": user_id,
                "played_at": item.played_at,
                "track_id": track_id_of(item.track),
                "context_uri": item.context.uri if item.context else None,
                "source": SOURCE,
            }
            # Oldest first: a play's estimated length is the time since the user's previous
            # play ended (playlog_estimate_ms), which must be stored by then; Spotify lists
            # the newest first.
            for item in sorted(fresh, key=lambda item: item.played_at)
        ]
        # A concurrent writer (an import of the same period) may have won the race.
        inserted = await session.execute(_INSERT_PLAYS, rows)
        result.inserted = len(inserted.all())
        result.duplicates += len(fresh) - result.inserted
    return result


async def _without_known_plays(
    session: AsyncSession, user_id: uuid.UUID, items: Sequence[PlayHistory], result: PageResult
) -> list[PlayHistory]:
    """Drop items already stored, exactly (API) or as the same play from an export."""
    start = min(item.played_at for item in items) - MAX_MATCH_WINDOW
    end = max(item.played_at for item in items) + MAX_MATCH_WINDOW
    primary = TrackArtist.__table__.alias("primary_link")
    query = (
        select(
            Play.played_at,
            Play.track_id,
            Play.source,
            Play.source_format,
            Track.name,
            Artist.name,
            Play.ms_played,
        )
        .join(Track, Track.track_id == Play.track_id)
        .outerjoin(primary, and_(primary.c.track_id == Play.track_id, primary.c.position == 0))
        .outerjoin(Artist, Artist.artist_id == primary.c.artist_id)
        .where(Play.user_id == user_id, Play.played_at.between(start, end))
    )
    stored = [
        PlayIdentity(played_at, track_id, artist, name, source, source_format, ms)
        for played_at, track_id, source, source_format, name, artist, ms in await session.execute(
            query
        )
    ]
    identities = [
        PlayIdentity(
            item.played_at,
            track_id_of(item.track),
            _primary_artist(item.track),
            item.track.name,
            SOURCE,
        )
        for item in items
    ]
    exact = {(row.played_at, row.track_id) for row in stored if row.source == SOURCE}
    pending: list[int] = []
    seen: set[tuple[Any, str]] = set()
    for index, identity in enumerate(identities):
        key = (identity.played_at, identity.track_id)
        if key in seen or key in exact:
            result.duplicates += 1
        else:
            pending.append(index)
        seen.add(key)
    exports = [row for row in stored if row.source != SOURCE]
    pairs = match_one_to_one([identities[i] for i in pending], exports)
    matched_items = {pending[i] for i, _ in pairs}
    result.cross_source += len(matched_items)
    return [items[i] for i in pending if i not in matched_items]


async def _upsert_catalog(session: AsyncSession, tracks: Sequence[SpotifyTrack]) -> None:
    track_rows: dict[str, dict[str, Any]] = {}
    artist_rows: dict[str, dict[str, Any]] = {}
    links: dict[tuple[str, str], dict[str, Any]] = {}
    for track in tracks:
        track_id = track_id_of(track)
        track_rows[track_id] = {
            "track_id": track_id,
            "kind": "track",
            "name": track.name,
            "album_id": track.album.id if track.album else None,
            "album_name": track.album.name if track.album else None,
            "duration_ms": track.duration_ms,
            "uri": track.uri,
            "source": SOURCE,
        }
        for position, artist in enumerate(track.artists):
            artist_id = artist.id or local_artist_id(artist.name)
            artist_rows[artist_id] = {
                "artist_id": artist_id,
                "name": artist.name,
                "uri": artist.uri,
            }
            if (track_id, artist_id) not in links:
                links[(track_id, artist_id)] = {
                    "track_id": track_id,
                    "artist_id": artist_id,
                    "position": position,
                }
    # Core statements executed with a list of rows: compiled once and cached, whatever
    # the page size (a multi-row VALUES would be compiled anew for every size).
    if artist_rows:
        await session.execute(_INSERT_ARTISTS, sorted(artist_rows.values(), key=_key("artist_id")))
    await session.execute(_UPSERT_TRACKS, sorted(track_rows.values(), key=_key("track_id")))
    if links:
        await session.execute(
            _INSERT_LINKS, sorted(links.values(), key=_key("track_id", "position"))
        )


def _key(*names: str) -> Any:
    # Rows are written in key order so concurrent upserts lock them in the same order
    # and cannot deadlock.
    return lambda row: tuple(row[name] for name in names)
