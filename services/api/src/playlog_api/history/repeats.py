"""``history_repeat_rate``: how much of the listening goes to tracks heard again.

The per-track part (plays, distinct tracks, tracks played once or ten times, the most
played tracks) comes from ``queries.repeat_stats``, so it follows the window's running totals
when they apply.
Back-to-back repeats need the order of plays, so they are read from the window's raw
plays in ``played_at`` order, walking the (user_id, played_at, track_id) index.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from playlog_api.history import queries
from playlog_api.history.schemas import Limit, RepeatStats, TrackCount
from playlog_api.history.totals import COUNTED, IN_WINDOW, Scope, open_scope
from playlog_api.history.window import WindowArgs, WindowView
from playlog_api.tools.registry import ToolContext, tool

# The sequence is every play of the window (any kind, skips left out: a skip is not a
# listen, so it neither counts nor breaks a run); a music play whose predecessor is the
# same track is a repeat. Consecutive repeat rows always share one track, so an island of
# consecutive row numbers among them is one run, started by the play just before it.
# Only the (few) repeat rows reach the grouping; the window's plays are walked once.
_BACK_TO_BACK = f"""
    WITH seq AS (
        SELECT p.played_at, p.track_id,
            lag(p.track_id) OVER w AS previous_track, lag(p.played_at) OVER w AS previous_at,
            row_number() OVER w AS n
        FROM plays p
        WHERE {IN_WINDOW} AND {COUNTED}
        WINDOW w AS (ORDER BY p.played_at, p.track_id)
    ), repeats AS (
        SELECT s.track_id, s.previous_at, s.played_at,
            s.n - row_number() OVER (ORDER BY s.n) AS island
        FROM seq s JOIN track_lookup l ON l.track_id = s.track_id AND l.kind = 'track'
        WHERE s.previous_track = s.track_id
    ), longest AS (
        SELECT track_id, count(*) + 1 AS plays, min(previous_at) AS started_at,
            max(played_at) AS ended_at
        FROM repeats GROUP BY island, track_id
        ORDER BY plays DESC, ended_at DESC, track_id
        LIMIT 1
    )
    SELECT (SELECT count(*) FROM repeats), r.track_id, l.name, l.artist_name, r.plays,
        r.started_at, r.ended_at
    FROM (SELECT 1) AS one
    LEFT JOIN longest r ON true
    LEFT JOIN track_lookup l ON l.track_id = r.track_id"""


class RepeatRateArgs(WindowArgs):
    limit: Limit = 5


class Run(BaseModel):
    track_id: str
    name: str
    artist: str | None
    plays: int = Field(description="Plays of the track in a row.")
    started_at: datetime
    ended_at: datetime


class RepeatRate(RepeatStats):
    window: WindowView
    most_repeated: list[TrackCount] = Field(description="Tracks played most (2+ plays).")
    consecutive_repeats: int = Field(
        description="Plays right after a play of the same track (on repeat)."
    )
    longest_run: Run | None = Field(
        description="Longest back-to-back run of one track; null when none was repeated."
    )


async def back_to_back(session: AsyncSession, scope: Scope) -> tuple[int, Run | None]:
    """Consecutive repeats and the longest run of one track in the window (music)."""
    row = (await session.execute(text(_BACK_TO_BACK), scope.params)).one()
    repeats, track_id, name, artist, plays, started_at, ended_at = row
    if track_id is None:
        return int(repeats), None
    run = Run(
        track_id=track_id,
        name=name,
        artist=artist,
        plays=plays,
        started_at=started_at,
        ended_at=ended_at,
    )
    return int(repeats), run


@tool("history_repeat_rate", path="repeat-rate")
async def history_repeat_rate(context: ToolContext, args: RepeatRateArgs) -> RepeatRate:
    """How repetitive the user's listening is over a window: plays, distinct tracks, repeat
    rate (1 - distinct/plays), plays per track, tracks played once or 10+ times, the most
    repeated tracks, plays of a track right after itself ("on repeat") and the longest such
    run. Music only; plays follow the 30-second rule and skips do not break a run."""
    scope = await open_scope(context, args)
    # The repeat figures and the top tracks come from one statement over the window, the
    # runs from another (the plays in order), side by side.
    (stats, top), (repeats, longest) = await context.sessions.both(
        lambda session: queries.repeat_stats(session, scope, args.limit),
        lambda session: back_to_back(session, scope),
    )
    return RepeatRate(
        **stats.model_dump(),
        window=scope.window.view,
        most_repeated=[track for track in top if track.plays >= 2],
        consecutive_repeats=repeats,
        longest_run=longest,
    )
