"""Aggregates over a user's window, built on the per-track and per-hour totals.

Music lists (tracks, artists, albums) count music only (``kind = 'track'``); totals,
heatmaps and coverage count every kind. Kind, names and the primary artist come from
``track_lookup`` (one row per track, kept by triggers on the catalog). Artists are
credited by their primary artist (position 0), which is also the one artist an export
names, and grouped by name: the same artist may be known by a Spotify id and by an id
derived from an export row.
Ties are broken by listening time, then by name, so a list is always in the same order.
Statements that answer several parts at once return them as json columns, which the
driver (SQLAlchemy's asyncpg dialect registers a json codec) hands over as lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from playlog_api.history.schemas import (
    AlbumCount,
    ArtistCount,
    Heatmap,
    RepeatStats,
    Totals,
    TrackCount,
    hours,
)
from playlog_api.history.totals import Scope

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Spotify ids of artists are preferred over ids derived from export rows.
ARTIST_ID = (
    "coalesce(min(a.artist_id) FILTER (WHERE a.artist_id NOT LIKE 'local:%'), min(a.artist_id))"
)


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    return list((await session.execute(text(sql), params)).all())


def _track_counts(rows: list[Any]) -> list[TrackCount]:
    return [
        TrackCount(
            track_id=track_id, name=name, artist=artist, album=album, plays=n, hours=hours(ms)
        )
        for track_id, name, artist, album, n, ms in rows
    ]


def _artist_counts(rows: list[Any]) -> list[ArtistCount]:
    return [
        ArtistCount(artist_id=artist_id, name=name, plays=n, hours=hours(ms), tracks=count)
        for name, artist_id, n, ms, count in rows
    ]


def _repeat(unique: int, plays: int, once: int, ten_plus: int, most: int) -> RepeatStats:
    return RepeatStats(
        plays=plays,
        unique_tracks=unique,
        repeat_rate=round(1 - unique / plays, 4) if plays else 0.0,
        plays_per_track=round(plays / unique, 2) if unique else 0.0,
        tracks_played_once=once,
        tracks_played_10_plus=ten_plus,
        most_plays_of_one_track=most,
    )


@dataclass(frozen=True)
class Music:
    unique_tracks: int
    unique_artists: int
    top_tracks: list[TrackCount]
    top_artists: list[ArtistCount]
    repeat: RepeatStats


@dataclass(frozen=True)
class Day:
    day: date
    rows: int
    plays: int
    api_rows: int
    listening_ms: int


@dataclass(frozen=True)
class Hourly:
    totals: Totals
    heatmap: Heatmap
    # Local days with at least one stored row, in order.
    days: list[Day]


# A window's music: per-track totals with the track's names and primary artist. Tracks
# with skips alone stay in: their time counts towards their artist's hours, as it does
# towards an album's, a show's and the totals; every list and count below takes only
# tracks with a play.
_MUSIC = """
    SELECT t.track_id, t.plays, t.listening_ms, l.name, l.album_name,
        l.artist_name AS artist, l.artist_id
    FROM ({track_plays}) t
    JOIN track_lookup l ON l.track_id = t.track_id AND l.kind = 'track'"""
# The order of every top-tracks list, over rows with plays, listening_ms, name, track_id.
TRACK_ORDER = "plays DESC, listening_ms DESC, name, track_id"
# Over the music rows "m", as a json array: distinct tracks, plays, tracks played once and
# 10+ times, the most plays of one track (the arguments of _repeat).
_REPEAT_COUNTS = """
    (SELECT json_build_array(count(*) FILTER (WHERE plays > 0), coalesce(sum(plays), 0),
        count(*) FILTER (WHERE plays = 1), count(*) FILTER (WHERE plays >= 10),
        coalesce(max(plays), 0)) FROM m)"""
# The ``limit`` most played of the music rows "m", as a json list.
_TOP_TRACKS = f"""
    (SELECT coalesce(json_agg(json_build_array(track_id, name, artist, album_name, plays,
        listening_ms) ORDER BY {TRACK_ORDER}), '[]')
     FROM (SELECT * FROM m WHERE plays > 0 ORDER BY {TRACK_ORDER} LIMIT :limit) top)"""
# The artists of the music rows "m", and the top ones (one rule for the summary and the
# artists tool).
_ARTISTS = f"""
    SELECT artist, {ARTIST_ID} AS artist_id, sum(plays) AS plays,
        sum(listening_ms) AS listening_ms, count(*) FILTER (WHERE plays > 0) AS tracks
    FROM m a WHERE artist IS NOT NULL GROUP BY artist HAVING sum(plays) > 0"""
ARTIST_ORDER = "plays DESC, listening_ms DESC, artist"
_TOP_ARTISTS = f"SELECT * FROM ({_ARTISTS}) a ORDER BY {ARTIST_ORDER} LIMIT :limit"


def _with_music(scope: Scope, *, materialized: bool = True) -> str:
    """The music rows "m" of the window; materialized where several parts read them."""
    keyword = "MATERIALIZED " if materialized else ""
    return f"WITH m AS {keyword}({_MUSIC.format(track_plays=scope.track_plays)})"


async def music(session: AsyncSession, scope: Scope, limit: int) -> Music:
    """Distinct tracks and artists, top tracks and artists and repeat figures, in one
    statement: the per-track totals are joined to the catalog once and reused, and the
    artists are grouped once for their count and their top (a count(DISTINCT) of the
    names sorted them all again: 36 -> 30 ms over 90 days of a million plays, medians of
    15 calls)."""
    sql = f"""
        {_with_music(scope)}, artists AS MATERIALIZED ({_ARTISTS})
        SELECT {_REPEAT_COUNTS}, (SELECT count(*) FROM artists), {_TOP_TRACKS},
            (SELECT coalesce(json_agg(json_build_array(artist, artist_id, plays, listening_ms,
                tracks) ORDER BY {ARTIST_ORDER}), '[]')
             FROM (SELECT * FROM artists ORDER BY {ARTIST_ORDER} LIMIT :limit) top)"""
    counts, unique_artists, tracks, artists = (
        await _rows(session, sql, {**scope.params, "limit": limit})
    )[0]
    repeat = _repeat(*counts)
    return Music(
        unique_tracks=repeat.unique_tracks,
        unique_artists=unique_artists,
        top_tracks=_track_counts(tracks),
        top_artists=_artist_counts(artists),
        repeat=repeat,
    )


# Over the per-hour rows "h": plays, skips, listening and estimated ms (see _totals).
_SUMS = """coalesce(sum(plays), 0), coalesce(sum(rows - plays), 0),
    coalesce(sum(listening_ms), 0), coalesce(sum(estimated_ms), 0)"""


def _totals(sums: list[int], active_days: int) -> Totals:
    plays, skips, listening_ms, estimated_ms = sums
    return Totals(
        plays=plays,
        skips=skips,
        listening_hours=hours(listening_ms),
        estimated_hours=hours(estimated_ms),
        active_days=active_days,
    )


async def hourly(session: AsyncSession, scope: Scope) -> Hourly:
    """Totals, the weekday x hour heatmap and the list of active days, in one statement
    over the per-hour totals."""
    sql = f"""
        WITH h AS MATERIALIZED ({scope.hours})
        SELECT
            (SELECT json_build_array({_SUMS}) FROM h),
            (SELECT coalesce(json_agg(json_build_array(weekday, hour, plays)), '[]')
             FROM (SELECT extract(isodow FROM local_hour)::int AS weekday,
                     extract(hour FROM local_hour)::int AS hour, sum(plays) AS plays
                   FROM h GROUP BY 1, 2) cells),
            (SELECT coalesce(json_agg(json_build_array(day, rows, plays, api_rows, listening_ms)
                ORDER BY day), '[]')
             FROM (SELECT local_hour::date AS day, sum(rows) AS rows, sum(plays) AS plays,
                     sum(api_rows) AS api_rows, sum(listening_ms) AS listening_ms
                   FROM h GROUP BY 1) days)"""
    sums, cells, day_rows = (await _rows(session, sql, scope.params))[0]
    days = [
        Day(date.fromisoformat(day), int(rows), int(n), int(api), int(ms))
        for day, rows, n, api, ms in day_rows
    ]
    totals = _totals(sums, sum(1 for day in days if day.plays > 0))
    return Hourly(totals=totals, heatmap=_heatmap(scope, cells), days=days)


def _heatmap(scope: Scope, cells: list[list[int]]) -> Heatmap:
    grid = [[0] * 24 for _ in WEEKDAYS]
    for weekday, hour, plays in cells:
        grid[weekday - 1][hour] = int(plays)
    day_totals = [sum(row) for row in grid]
    hour_totals = [sum(grid[d][h] for d in range(7)) for h in range(24)]
    peak_day, peak_hour = max(
        ((d, h) for d in range(7) for h in range(24)), key=lambda cell: grid[cell[0]][cell[1]]
    )
    listened = any(day_totals)
    return Heatmap(
        tz=scope.window.tz.key,
        weekdays=list(WEEKDAYS),
        plays=grid,
        by_weekday=day_totals,
        by_hour=hour_totals,
        peak_weekday=WEEKDAYS[peak_day] if listened else None,
        peak_hour=peak_hour if listened else None,
    )


async def totals(session: AsyncSession, scope: Scope) -> Totals:
    """The totals of :func:`hourly` alone, without its heatmap and days (a period of
    compare periods, 90 days of a million plays: 4.4 instead of 6.6 ms, medians of 40)."""
    sql = f"""
        SELECT json_build_array({_SUMS}),
            count(DISTINCT local_hour::date) FILTER (WHERE plays > 0)
        FROM ({scope.hours}) h"""
    sums, active_days = (await _rows(session, sql, scope.params))[0]
    return _totals(sums, active_days)


# The heatmap alone: a view of the combined statement.
async def heatmap(session: AsyncSession, scope: Scope) -> Heatmap:
    return (await hourly(session, scope)).heatmap


# One music list alone: the same music rows, and only the part asked for.
async def top_tracks(session: AsyncSession, scope: Scope, limit: int) -> list[TrackCount]:
    sql = f"{_with_music(scope, materialized=False)} SELECT {_TOP_TRACKS}"
    return _track_counts((await _rows(session, sql, {**scope.params, "limit": limit}))[0][0])


async def top_artists(session: AsyncSession, scope: Scope, limit: int) -> list[ArtistCount]:
    sql = f"{_with_music(scope, materialized=False)} {_TOP_ARTISTS}"
    return _artist_counts(await _rows(session, sql, {**scope.params, "limit": limit}))


async def repeat_stats(
    session: AsyncSession, scope: Scope, limit: int = 1
) -> tuple[RepeatStats, list[TrackCount]]:
    """How much of the window's music went to tracks heard before, and the ``limit`` most
    played tracks, in one statement."""
    sql = f"{_with_music(scope)} SELECT {_REPEAT_COUNTS}, {_TOP_TRACKS}"
    counts, tracks = (await _rows(session, sql, {**scope.params, "limit": limit}))[0]
    return _repeat(*counts), _track_counts(tracks)


async def top_albums(session: AsyncSession, scope: Scope, limit: int) -> list[AlbumCount]:
    sql = f"""
        SELECT l.album_name, l.artist_name, sum(t.plays), sum(t.listening_ms),
            count(*) FILTER (WHERE t.plays > 0)
        FROM ({scope.track_plays}) t
        JOIN track_lookup l ON l.track_id = t.track_id AND l.kind = 'track'
        WHERE l.album_name IS NOT NULL
        GROUP BY l.album_name, l.artist_name HAVING sum(t.plays) > 0
        ORDER BY 3 DESC, 4 DESC, l.album_name, l.artist_name
        LIMIT :limit"""
    rows = await _rows(session, sql, {**scope.params, "limit": limit})
    return [
        AlbumCount(album=album, artist=artist, plays=plays, hours=hours(ms), tracks=tracks)
        for album, artist, plays, ms, tracks in rows
    ]
