"""The two building blocks of every analytics query: totals per track and per local hour.

Each comes from the raw ``plays`` of the window or, when that gives the same answer,
from the running totals the database keeps (``play_tracks``, ``play_hours``; see
``playlog.db.models.rollups``):

- per track, the totals table holds the whole history, so it answers windows that
  contain every play of the user;
- per hour, the totals table holds hours that start at the user's own minute past the
  UTC hour (``playlog.history.hours``), so it answers any window of whole local days in
  a zone whose local hours start at that minute throughout the window: the user's own
  zone, and any other zone with the same minute (Europe/Berlin and America/New_York both
  start hours at minute 0). Other zones (an override such as Asia/Kolkata for a user in
  Berlin) are bucketed from the raw plays.

Both forms yield the same columns, so the queries built on them never know which one
they got. SQL fragments here are constants; values always travel as bind parameters.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.history.hours import window_hour_start
from playlog.history.identity import PLAY_MIN_MS
from playlog_api.history.window import Window, WindowArgs, resolve
from playlog_api.tools.registry import ToolContext

COUNTED = f"(p.ms_played IS NULL OR p.ms_played >= {PLAY_MIN_MS})"
LISTENING_MS = "coalesce(p.ms_played, p.ms_estimated, 0)"
IN_WINDOW = "p.user_id = :user_id AND p.played_at >= :start AND p.played_at < :end"

# track_id, rows, plays, listening_ms, first_played_at, last_played_at
_TRACKS_ROLLUP = """
    SELECT track_id, rows, plays, listening_ms, first_played_at, last_played_at
    FROM play_tracks WHERE user_id = :user_id"""
_TRACKS_RAW = f"""
    SELECT p.track_id, count(*) AS rows, count(*) FILTER (WHERE {COUNTED}) AS plays,
        sum({LISTENING_MS}) AS listening_ms,
        min(p.played_at) FILTER (WHERE {COUNTED}) AS first_played_at,
        max(p.played_at) FILTER (WHERE {COUNTED}) AS last_played_at
    FROM plays p WHERE {IN_WINDOW} GROUP BY p.track_id"""

# track_id, rows, plays, listening_ms: what most lists need, cheaper to aggregate.
_TRACK_PLAYS_ROLLUP = """
    SELECT track_id, rows, plays, listening_ms FROM play_tracks WHERE user_id = :user_id"""
_TRACK_PLAYS_RAW = f"""
    SELECT p.track_id, count(*) AS rows, count(*) FILTER (WHERE {COUNTED}) AS plays,
        sum({LISTENING_MS}) AS listening_ms
    FROM plays p WHERE {IN_WINDOW} GROUP BY p.track_id"""

# local_hour (timestamp without time zone), rows, plays, listening_ms, estimated_ms, api_rows
_HOURS_ROLLUP = """
    SELECT hour AT TIME ZONE :tz AS local_hour, rows, plays, listening_ms, estimated_ms,
        api_rows
    FROM play_hours WHERE user_id = :user_id AND hour >= :start AND hour < :end"""
_HOURS_RAW = f"""
    SELECT date_trunc('hour', p.played_at AT TIME ZONE :tz) AS local_hour, count(*) AS rows,
        count(*) FILTER (WHERE {COUNTED}) AS plays, sum({LISTENING_MS}) AS listening_ms,
        coalesce(sum(p.ms_estimated) FILTER (WHERE p.ms_played IS NULL), 0) AS estimated_ms,
        count(*) FILTER (WHERE p.source = 'spotify_api') AS api_rows
    FROM plays p WHERE {IN_WINDOW} GROUP BY 1"""


@dataclass(frozen=True)
class Scope:
    """One user's window, with the facts that choose between raw plays and totals."""

    user_id: uuid.UUID
    window: Window
    # The user's first and last stored row (any length), or None without history.
    first_played_at: datetime | None
    last_played_at: datetime | None
    # Where the user's hour totals start (users.hour_start_minute).
    hour_start_minute: int
    # False computes everything from raw plays (tests check both give the same answers).
    use_totals: bool = True

    @property
    def params(self) -> dict[str, object]:
        return {"user_id": self.user_id, **self.window.params}

    @property
    def whole_history(self) -> bool:
        """True when the window holds every stored row of the user."""
        return (
            self.first_played_at is None
            or self.last_played_at is None
            or (self.window.start <= self.first_played_at and self.last_played_at < self.window.end)
        )

    @property
    def tracks(self) -> str:
        """Subquery: totals per track over the window."""
        return _TRACKS_ROLLUP if self.tracks_from_totals else _TRACKS_RAW

    @property
    def track_plays(self) -> str:
        """Subquery: like ``tracks`` without the first/last play columns."""
        return _TRACK_PLAYS_ROLLUP if self.tracks_from_totals else _TRACK_PLAYS_RAW

    @property
    def tracks_from_totals(self) -> bool:
        """Whether per-track figures come from ``play_tracks`` (which holds the whole
        history) rather than the window's plays; queries of their own follow it too."""
        return self.use_totals and self.whole_history

    @property
    def hours(self) -> str:
        """Subquery: totals per local hour over the window."""
        window = self.window
        if self.use_totals and self.hour_start_minute == window_hour_start(
            window.tz, window.start, window.end
        ):
            return _HOURS_ROLLUP
        return _HOURS_RAW


async def load_scope(session: AsyncSession, user_id: uuid.UUID, window: Window) -> Scope:
    # Two probes of the (user_id, played_at, track_id) index, not an aggregate scan; the
    # minute is read here, not from the request's user row, so a zone change that
    # committed since (and rebuilt the totals) is seen with the totals it built.
    row = (
        await session.execute(
            text(
                "SELECT (SELECT min(played_at) FROM plays WHERE user_id = :u),"
                " (SELECT max(played_at) FROM plays WHERE user_id = :u),"
                " (SELECT hour_start_minute FROM users WHERE id = :u)"
            ),
            {"u": user_id},
        )
    ).one()
    return Scope(user_id, window, row[0], row[1], row[2])


async def open_scope(context: ToolContext, args: WindowArgs) -> Scope:
    """The window a tool was asked about, for the user it acts for."""
    window = resolve(args, context.user.timezone, now=context.now)
    return await load_scope(context.session, context.user.id, window)
