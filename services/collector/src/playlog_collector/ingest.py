"""Storing a page of recently-played items: catalog upserts and de-duplicated plays.

Database work is proportional to the page: the catalog rows it names, and the plays of
the same user within the page's time span (for the cross-source rule), read through the
unique index on (user_id, played_at, track_id).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import Artist, Play, Track, TrackArtist
from playlog.history.identity import (
    MAX_MATCH_WINDOW,
    PlayIdentity,
    local_artist_id,
    local_track_id,
    same_play,
)
from playlog.spotify.models import PlayHistory
from playlog.spotify.models import Track as SpotifyTrack

SOURCE = "spotify_api"


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
    artist = track.artists[0].name if track.artists else None
    return local_track_id(artist, track.name, track.album.name if track.album else None)


def _primary_artist(track: SpotifyTrack) -> str | None:
    return track.artists[0].name if track.artists else None


async def store_page(
    session: AsyncSession, user_id: uuid.UUID, items: Sequence[PlayHistory]
) -> PageResult:
    """Upsert the catalog rows of ``items`` and insert their plays; the caller commits."""
    result = PageResult(fetched=len(items))
    if not items:
        return result
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
            for item in fresh
        ]
        # A concurrent writer (an import of the same period) may have won the race.
        inserted = await session.scalars(
            insert(Play).values(rows).on_conflict_do_nothing().returning(Play.id)
        )
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
        )
        .join(Track, Track.track_id == Play.track_id)
        .outerjoin(primary, and_(primary.c.track_id == Play.track_id, primary.c.position == 0))
        .outerjoin(Artist, Artist.artist_id == primary.c.artist_id)
        .where(Play.user_id == user_id, Play.played_at.between(start, end))
    )
    stored = [
        PlayIdentity(played_at, track_id, artist, name, source, source_format)
        for played_at, track_id, source, source_format, name, artist in await session.execute(query)
    ]
    fresh: list[PlayHistory] = []
    seen: set[tuple[Any, str]] = set()
    for item in items:
        identity = PlayIdentity(
            item.played_at,
            track_id_of(item.track),
            _primary_artist(item.track),
            item.track.name,
            SOURCE,
        )
        key = (identity.played_at, identity.track_id)
        matches = [row for row in stored if same_play(row, identity)]
        if key in seen or any(row.source == SOURCE for row in matches):
            result.duplicates += 1
        elif matches:
            result.cross_source += 1
        else:
            fresh.append(item)
        seen.add(key)
    return fresh


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
        positions: set[int] = set()
        for position, artist in enumerate(track.artists):
            artist_id = artist.id or local_artist_id(artist.name)
            artist_rows[artist_id] = {
                "artist_id": artist_id,
                "name": artist.name,
                "uri": artist.uri,
            }
            if (track_id, artist_id) not in links and position not in positions:
                links[(track_id, artist_id)] = {
                    "track_id": track_id,
                    "artist_id": artist_id,
                    "position": position,
                }
                positions.add(position)
    if artist_rows:
        await session.execute(
            insert(Artist)
            .values(sorted(artist_rows.values(), key=_key("artist_id")))
            .on_conflict_do_nothing()
        )
    statement = insert(Track).values(sorted(track_rows.values(), key=_key("track_id")))
    # An export may have stored the track first without Spotify's album id or duration;
    # fill those in, and leave complete rows untouched (no write per poll).
    statement = statement.on_conflict_do_update(
        index_elements=[Track.track_id],
        set_={
            "album_id": statement.excluded.album_id,
            "duration_ms": statement.excluded.duration_ms,
            "uri": statement.excluded.uri,
        },
        where=Track.album_id.is_(None) | Track.duration_ms.is_(None) | Track.uri.is_(None),
    )
    await session.execute(statement)
    if links:
        await session.execute(
            insert(TrackArtist)
            .values(sorted(links.values(), key=_key("track_id", "position")))
            .on_conflict_do_nothing()
        )


def _key(*names: str) -> Any:
    # Rows are written in key order so concurrent upserts lock them in the same order
    # and cannot deadlock.
    return lambda row: tuple(row[name] for name in names)
