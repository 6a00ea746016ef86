"""``history_skips``: what the user cuts short, when, and how playback ended.

A skip is the counting rule's skip: a row with ``ms_played`` under 30 s (API rows carry
no ``ms_played`` and are always plays). Spotify's own ``skipped`` flag, present only in
extended exports, is reported apart: it marks rows the user skipped at any point, so it
neither matches nor replaces the 30-second rule.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from playlog_api.history.queries import ARTIST_ID
from playlog_api.history.schemas import LimitedWindowArgs, share
from playlog_api.history.totals import COUNTED, IN_WINDOW, Scope, open_scope
from playlog_api.history.window import WindowView
from playlog_api.tools.registry import Sessions, ToolContext, tool

# One accidental skip of a track heard once is a 100 % skip rate; ranking needs a few
# rows before a rate means anything.
MIN_ROWS = 3
MAX_REASONS = 10


class SkippedTrack(BaseModel):
    track_id: str
    name: str
    artist: str | None
    rows: int = Field(description="Rows in the window: plays and skips.")
    skips: int
    skip_rate: float = Field(description="skips / rows.")


class SkippedArtist(BaseModel):
    artist_id: str
    name: str
    rows: int
    skips: int
    skip_rate: float
    tracks: int = Field(description="Distinct tracks of the artist with a row in the window.")


class SkipReason(BaseModel):
    reason_end: str = Field(description="How playback ended; 'unknown' when not recorded.")
    skips: int


class HourSkips(BaseModel):
    hour: int
    rows: int
    skips: int
    skip_rate: float | None = Field(description="Null when the hour has no rows.")


class SpotifySkipped(BaseModel):
    rows_with_flag: int = Field(
        description="Rows carrying Spotify's skipped flag (export rows; API rows have none)."
    )
    skipped: int = Field(description="Rows Spotify marked skipped = true.")
    skipped_under_30s: int = Field(description="Of those, rows that are also skips here.")


class Skips(BaseModel):
    window: WindowView
    rows: int
    plays: int
    skips: int = Field(description="Rows under 30 s.")
    skip_rate: float = Field(description="skips / rows.")
    spotify_skipped: SpotifySkipped
    tracks: list[SkippedTrack] = Field(
        description=f"Most skipped music tracks with at least {MIN_ROWS} rows."
    )
    artists: list[SkippedArtist] = Field(
        description=f"Most skipped primary artists with at least {MIN_ROWS} rows."
    )
    reasons: list[SkipReason] = Field(description="Skips by reason_end, most frequent first.")
    by_hour: list[HourSkips] = Field(description="24 local hours of the day.")


# Reasons and Spotify's flag exist only on the rows themselves, so these are read from
# the window's plays (an index range scan of the user's window).
REASONS_SQL = f"""
    SELECT coalesce(p.reason_end, 'unknown') AS reason,
        count(*) FILTER (WHERE NOT {COUNTED}) AS skips,
        count(*) FILTER (WHERE p.skipped IS NOT NULL) AS flagged,
        count(*) FILTER (WHERE p.skipped) AS skipped,
        count(*) FILTER (WHERE p.skipped AND NOT {COUNTED}) AS skipped_short
    FROM plays p WHERE {IN_WINDOW}
    GROUP BY 1"""


def _lists_sql(scope: Scope) -> str:
    # Tracks and artists share one pass over the window's per-track totals.
    return f"""
        WITH t AS MATERIALIZED (
            SELECT t.track_id, t.rows, t.rows - t.plays AS skips, l.name,
                l.artist_name AS artist, l.artist_id
            FROM ({scope.track_plays}) t
            JOIN track_lookup l ON l.track_id = t.track_id AND l.kind = 'track'
        ),
        by_artist AS (
            SELECT a.artist AS name, {ARTIST_ID} AS artist_id, sum(a.rows) AS rows,
                sum(a.skips) AS skips, count(*) AS tracks
            FROM t a WHERE a.artist IS NOT NULL
            GROUP BY a.artist HAVING sum(a.rows) >= :min_rows AND sum(a.skips) > 0
        ),
        top_tracks AS (
            SELECT track_id, rows, skips, name, artist FROM t
            WHERE rows >= :min_rows AND skips > 0
            ORDER BY skips DESC, skips::float8 / rows DESC, name, track_id
            LIMIT :limit
        )
        SELECT
            (SELECT coalesce(json_agg(x ORDER BY x.skips DESC, x.skips::float8 / x.rows DESC,
                                      x.name, x.track_id), '[]') FROM top_tracks x),
            (SELECT coalesce(json_agg(x ORDER BY x.skips DESC, x.skips::float8 / x.rows DESC,
                                      x.name), '[]')
             FROM (SELECT * FROM by_artist
                   ORDER BY skips DESC, skips::float8 / rows DESC, name
                   LIMIT :limit) x)"""


def _counts_sql(scope: Scope) -> str:
    # Hours come from the per-hour totals, reasons from the rows.
    return f"""
        SELECT
            (SELECT coalesce(json_agg(json_build_array(hour, rows, skips)), '[]')
             FROM (SELECT extract(hour FROM local_hour)::int AS hour, sum(rows) AS rows,
                       sum(rows - plays) AS skips
                   FROM ({scope.hours}) h GROUP BY 1) x),
            (SELECT coalesce(json_agg(json_build_array(reason, skips, flagged, skipped,
                skipped_short)), '[]') FROM ({REASONS_SQL}) r)"""


async def _one(session: AsyncSession, sql: str, params: dict[str, Any]) -> Any:
    return (await session.execute(text(sql), params)).one()


async def skips(sessions: Sessions, scope: Scope, limit: int) -> Skips:
    """The skips of ``scope``: the per-track lists and the per-hour and per-reason counts
    are two statements, run side by side (:meth:`Sessions.both`)."""
    params = {**scope.params, "limit": limit, "min_rows": MIN_ROWS}
    (top_tracks, top_artists), (hour_rows, reason_rows) = await sessions.both(
        lambda session: _one(session, _lists_sql(scope), params),
        lambda session: _one(session, _counts_sql(scope), params),
    )
    by_hour = {hour: (int(rows), int(skipped)) for hour, rows, skipped in hour_rows}
    rows = sum(r for r, _ in by_hour.values())
    skipped = sum(s for _, s in by_hour.values())
    reasons = sorted(
        ((reason, int(count)) for reason, count, *_ in reason_rows if count),
        key=lambda item: (-item[1], item[0]),
    )
    return Skips(
        window=scope.window.view,
        rows=rows,
        plays=rows - skipped,
        skips=skipped,
        skip_rate=share(skipped, rows),
        spotify_skipped=SpotifySkipped(
            rows_with_flag=sum(int(r[2]) for r in reason_rows),
            skipped=sum(int(r[3]) for r in reason_rows),
            skipped_under_30s=sum(int(r[4]) for r in reason_rows),
        ),
        tracks=[_track(item) for item in top_tracks],
        artists=[_artist(item) for item in top_artists],
        reasons=[SkipReason(reason_end=r, skips=n) for r, n in reasons[:MAX_REASONS]],
        by_hour=[_hour(hour, *by_hour.get(hour, (0, 0))) for hour in range(24)],
    )


def _track(item: dict[str, Any]) -> SkippedTrack:
    return SkippedTrack(
        track_id=item["track_id"],
        name=item["name"],
        artist=item["artist"],
        rows=item["rows"],
        skips=item["skips"],
        skip_rate=share(item["skips"], item["rows"]),
    )


def _artist(item: dict[str, Any]) -> SkippedArtist:
    return SkippedArtist(
        artist_id=item["artist_id"],
        name=item["name"],
        rows=item["rows"],
        skips=item["skips"],
        skip_rate=share(item["skips"], item["rows"]),
        tracks=item["tracks"],
    )


def _hour(hour: int, rows: int, skipped: int) -> HourSkips:
    return HourSkips(
        hour=hour, rows=rows, skips=skipped, skip_rate=share(skipped, rows) if rows else None
    )


@tool("history_skips", path="skips")
async def history_skips(context: ToolContext, args: LimitedWindowArgs) -> Skips:
    """How much and what the user skips over a window: the skip rate, the most skipped
    tracks and artists, skips by how playback ended and the skip rate per hour of the day.
    A skip is a row under 30 seconds (API rows always count as plays); rates are skips /
    rows. Most skipped lists are music by primary artist and include only items with at
    least 3 rows in the window, so one accidental skip does not rank. Hours are local (the
    user's zone or ``tz``, daylight saving handled). Spotify's own skipped flag (export
    rows only) is counted apart. Default window: the last 90 days."""
    scope = await open_scope(context, args)
    return await skips(context.sessions, scope, args.limit)
