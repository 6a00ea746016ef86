"""``history_discoveries``: music heard for the first time ever inside a window.

A track is new when its first counted play over the user's whole history falls inside
the window; ``play_tracks.first_played_at`` holds exactly that (skips never count), so no
play before the window is read. An artist is new when the earliest first play over all
of their tracks does. Artists are credited by primary artist and grouped by name, as in
every artist list, so one artist known by two ids is one discovery, and an artist whose
other track was heard before the window is not new even if this track is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from playlog_api.history.queries import ARTIST_ID, TRACK_ORDER
from playlog_api.history.schemas import LimitedWindowArgs, hours, share
from playlog_api.history.totals import COUNTED, IN_WINDOW, LISTENING_MS, Scope, open_scope
from playlog_api.history.window import WindowView
from playlog_api.tools.registry import ToolContext, tool


class NewArtist(BaseModel):
    artist_id: str
    name: str
    plays: int = Field(description="Plays in the window.")
    hours: float
    tracks: int = Field(description="Distinct tracks of the artist played in the window.")
    first_played_at: datetime
    first_track_id: str
    first_track: str = Field(description="The first track of the artist the user heard.")


class NewTrack(BaseModel):
    track_id: str
    name: str
    artist: str | None
    album: str | None
    plays: int = Field(description="Plays in the window.")
    hours: float
    first_played_at: datetime


class DiscoveryCounts(BaseModel):
    window_plays: int = Field(description="All plays in the window, any kind.")
    new_tracks: int
    new_track_plays: int
    new_track_share: float = Field(description="new_track_plays / window_plays.")
    new_artists: int
    new_artist_plays: int
    new_artist_share: float = Field(description="new_artist_plays / window_plays.")


class Discoveries(BaseModel):
    window: WindowView
    counts: DiscoveryCounts
    artists: list[NewArtist]
    tracks: list[NewTrack]


# A new track's plays in the window: from the running totals when the window holds the
# whole history, else from the window's plays of the new tracks (one pass over the window).
_WINDOW_PLAYS_ROLLUP = (
    "CROSS JOIN LATERAL (SELECT f.rollup_plays AS plays, f.rollup_ms AS listening_ms) w"
)
_WINDOW_PLAYS_RAW = f"""
    JOIN (SELECT p.track_id, count(*) FILTER (WHERE {COUNTED}) AS plays,
              sum({LISTENING_MS}) AS listening_ms
          FROM plays p
          WHERE {IN_WINDOW} AND p.track_id IN (SELECT track_id FROM fresh)
          GROUP BY p.track_id) w ON w.track_id = f.track_id"""


# Only the candidates' catalogues are looked at; LIMIT 1 keeps the lookup per artist id
# (stopping at its first old track) instead of a join over the user's whole history.
_KNOWN = """
    SELECT DISTINCT a.name
    FROM artists a
    CROSS JOIN LATERAL (
        SELECT 1 FROM track_artists ta
        JOIN tracks tr ON tr.track_id = ta.track_id AND tr.kind = 'track'
        JOIN play_tracks pt ON pt.user_id = :user_id AND pt.track_id = ta.track_id
        WHERE ta.artist_id = a.artist_id AND ta.position = 0
            AND pt.first_played_at < :start
        LIMIT 1) old
    WHERE a.name IN (SELECT artist FROM music)"""
# A window starting before the user's first row leaves nothing heard before it.
_NONE_KNOWN = "SELECT NULL::text AS name WHERE false"


# Name, album and primary artist of a music track.
_CATALOG = """
    SELECT l.track_id, l.name, l.album_name, l.artist_name AS artist, l.artist_id
    FROM track_lookup l WHERE l.kind = 'track'"""
# A window has few new tracks: one index probe each (LIMIT 1 keeps the planner from a hash
# join that reads the whole catalogue). All time makes every track new: join in bulk.
_CATALOG_PER_TRACK = f"CROSS JOIN LATERAL ({_CATALOG} AND l.track_id = f.track_id LIMIT 1) c"
_CATALOG_JOINED = f"JOIN ({_CATALOG}) c ON c.track_id = f.track_id"


def _discoveries_sql(scope: Scope) -> str:
    window_plays = _WINDOW_PLAYS_ROLLUP if scope.tracks_from_totals else _WINDOW_PLAYS_RAW
    catalog = _CATALOG_JOINED if scope.whole_history else _CATALOG_PER_TRACK
    first = scope.first_played_at
    known = _NONE_KNOWN if first is None or scope.window.start <= first else _KNOWN
    return f"""
        WITH fresh AS MATERIALIZED (
            -- The user's tracks (any kind) first heard in the window. play_tracks has one
            -- row per track the user ever played, so this never reads plays.
            SELECT pt.track_id, pt.first_played_at, pt.plays AS rollup_plays,
                pt.listening_ms AS rollup_ms
            FROM play_tracks pt
            WHERE pt.user_id = :user_id
                AND pt.first_played_at >= :start AND pt.first_played_at < :end
        ),
        music AS MATERIALIZED (
            SELECT f.track_id, f.first_played_at, w.plays, w.listening_ms, c.name,
                c.album_name, c.artist, c.artist_id
            FROM fresh f
            {catalog}
            {window_plays}
        ),
        -- Artists of new tracks who had a track first played before the window, under
        -- any artist id of the same name: heard before, so not new.
        known AS ({known}),
        -- Aliased "a" so ARTIST_ID (preferring Spotify ids) applies; a.name is the track.
        new_artists AS (
            SELECT a.artist AS name, {ARTIST_ID} AS artist_id, sum(a.plays) AS plays,
                sum(a.listening_ms) AS listening_ms, count(*) AS tracks,
                min(a.first_played_at) AS first_played_at
            FROM music a
            WHERE a.artist IS NOT NULL AND a.artist NOT IN (SELECT name FROM known)
            GROUP BY a.artist
        )
        SELECT
            (SELECT coalesce(sum(plays), 0) FROM ({scope.hours}) h),
            (SELECT count(*) FROM music),
            (SELECT coalesce(sum(plays), 0) FROM music),
            (SELECT count(*) FROM new_artists),
            (SELECT coalesce(sum(plays), 0) FROM new_artists),
            -- The first track heard is looked up for the listed artists only.
            (SELECT coalesce(json_agg(x ORDER BY x.plays DESC, x.listening_ms DESC, x.name), '[]')
             FROM (SELECT n.*, first.track_id AS first_track_id, first.name AS first_track
                   FROM (SELECT * FROM new_artists
                         ORDER BY plays DESC, listening_ms DESC, name LIMIT :limit) n
                   CROSS JOIN LATERAL (
                       SELECT m.track_id, m.name FROM music m WHERE m.artist = n.name
                       ORDER BY m.first_played_at, m.name, m.track_id LIMIT 1) first) x),
            (SELECT coalesce(json_agg(x ORDER BY x.plays DESC, x.listening_ms DESC, x.name,
                                      x.track_id), '[]')
             FROM (SELECT track_id, name, artist, album_name, plays, listening_ms,
                          first_played_at
                   FROM music
                   ORDER BY {TRACK_ORDER} LIMIT :limit) x)"""


def utc_instant(value: str) -> datetime:
    """A timestamp out of a JSON aggregate (rendered in the session's zone), in UTC like
    every timestamp read from a column."""
    return datetime.fromisoformat(value).astimezone(UTC)


async def discoveries(session: AsyncSession, scope: Scope, limit: int) -> Discoveries:
    """New tracks and artists of ``scope``'s window, with the ``limit`` most played."""
    row = (
        await session.execute(text(_discoveries_sql(scope)), {**scope.params, "limit": limit})
    ).one()
    total, tracks, track_plays, artists, artist_plays, top_artists, top_tracks = row
    counts = DiscoveryCounts(
        window_plays=total,
        new_tracks=tracks,
        new_track_plays=track_plays,
        new_track_share=share(track_plays, total),
        new_artists=artists,
        new_artist_plays=artist_plays,
        new_artist_share=share(artist_plays, total),
    )
    return Discoveries(
        window=scope.window.view,
        counts=counts,
        artists=[_artist(item) for item in top_artists],
        tracks=[_track(item) for item in top_tracks],
    )


def _artist(item: dict[str, Any]) -> NewArtist:
    return NewArtist(
        artist_id=item["artist_id"],
        name=item["name"],
        plays=item["plays"],
        hours=hours(item["listening_ms"]),
        tracks=item["tracks"],
        first_played_at=utc_instant(item["first_played_at"]),
        first_track_id=item["first_track_id"],
        first_track=item["first_track"],
    )


def _track(item: dict[str, Any]) -> NewTrack:
    return NewTrack(
        track_id=item["track_id"],
        name=item["name"],
        artist=item["artist"],
        album=item["album_name"],
        plays=item["plays"],
        hours=hours(item["listening_ms"]),
        first_played_at=utc_instant(item["first_played_at"]),
    )


@tool("history_discoveries", path="discoveries")
async def history_discoveries(context: ToolContext, args: LimitedWindowArgs) -> Discoveries:
    """Music the user heard for the first time ever inside a window: how many tracks and
    primary artists had their first counted play (over the whole history) in it, their
    share of all the window's plays, and the most played new artists and tracks. A track
    or artist heard before the window is not new, and skips (< 30 s) never count as
    hearing it. Each new artist comes with the first track heard. Default window: the last
    90 days. Use it for "what did I discover this year" or "which new artists did I get
    into"."""
    scope = await open_scope(context, args)
    return await discoveries(context.session, scope, args.limit)
