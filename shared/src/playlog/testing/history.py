"""Listening history for analytics tests: tracks with their artist, plays of them, and a
personal token to ask about them.

Plays go in through the ORM like any writer's, so the database's triggers keep the
running totals (``play_hours``, ``play_tracks``) exactly as they would in production.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from playlog.access_tokens import create_token
from playlog.db.models import Artist, Play, Track, TrackArtist
from playlog.history.identity import local_artist_id


async def add_track(
    session: AsyncSession,
    name: str,
    artist: str | None = None,
    *,
    album: str | None = None,
    kind: str = "track",
    show: str | None = None,
    duration_ms: int | None = 200_000,
    track_id: str | None = None,
    artist_id: str | None = None,
) -> Track:
    """A track (or episode / chapter) and, when ``artist`` is given, its primary artist:
    ``artist_id``, or else the id an export row naming the artist gets."""
    track = Track(
        track_id=track_id or f"t{uuid.uuid4().hex[:21]}",
        kind=kind,
        name=name,
        album_name=album,
        show_name=show,
        duration_ms=duration_ms,
        source="spotify_api",
    )
    session.add(track)
    if artist is not None:
        the_id = artist_id or local_artist_id(artist)
        if await session.get(Artist, the_id) is None:
            session.add(Artist(artist_id=the_id, name=artist))
        await session.flush()
        session.add(TrackArtist(track_id=track.track_id, artist_id=the_id, position=0))
    await session.flush()
    return track


async def add_listens(
    session: AsyncSession,
    user_id: uuid.UUID,
    track: Track,
    *played_at: datetime,
    ms_played: int | None = 180_000,
    source: str = "import_zip",
    skipped: bool | None = None,
) -> list[Play]:
    """Plays of ``track`` ending at each of ``played_at``, inserted in one statement."""
    plays = [
        Play(
            user_id=user_id,
            played_at=at,
            track_id=track.track_id,
            ms_played=ms_played,
            source=source,
            source_format="extended" if source == "import_zip" else None,
            skipped=skipped,
        )
        for at in played_at
    ]
    session.add_all(plays)
    await session.flush()
    return plays


async def token_headers(session: AsyncSession, user_id: uuid.UUID) -> dict[str, str]:
    """Headers that authenticate as ``user_id`` with a new personal access token."""
    issued = await create_token(session, user_id, "tests")
    return {"Authorization": f"Bearer {issued.secret}"}
