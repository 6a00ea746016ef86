"""How complete a user's history is over a window: active days, sources, recorded gaps."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import text

from playlog_api.history import queries
from playlog_api.history.totals import Scope, open_scope
from playlog_api.history.window import WindowArgs, WindowView
from playlog_api.tools.registry import ToolContext, tool

MAX_GAPS = 20


class GapView(BaseModel):
    start: datetime
    end: datetime
    hours: float


class Coverage(BaseModel):
    first_played_at: datetime | None = Field(description="First stored row in the window.")
    last_played_at: datetime | None
    days: int = Field(description="Local days in the window.")
    active_days: int = Field(description="Local days with at least one play (30-second rule).")
    days_with_rows: int = Field(
        description="Local days with at least one stored row, plays or skips."
    )
    longest_silence_days: int = Field(
        description="Longest run of days without any row between the first and last one."
    )
    rows_by_source: dict[str, int] = Field(
        description="Stored rows (plays and skips) from Spotify's API and from export imports."
    )
    recorded_gaps: int = Field(
        description="Periods the collector could not see (more than ~50 plays while down); "
        "importing an export fills them."
    )
    gaps: list[GapView] = Field(description=f"The newest {MAX_GAPS} recorded gaps.")


class CoverageResult(BaseModel):
    window: WindowView
    coverage: Coverage


async def coverage(
    context: ToolContext, scope: Scope, hourly: queries.Hourly | None = None
) -> Coverage:
    """Coverage of the window; ``hourly`` when the caller already has it."""
    session = context.session
    if hourly is None:
        hourly = await queries.hourly(session, scope)
    days = hourly.days
    bounds = (
        await session.execute(
            text(
                "SELECT min(played_at), max(played_at) FROM plays"
                " WHERE user_id = :user_id AND played_at >= :start AND played_at < :end"
            ),
            scope.params,
        )
    ).one()
    api = sum(day.api_rows for day in days)
    total = sum(day.rows for day in days)
    # count(*) OVER () is taken before the LIMIT: the number of all gaps in the window.
    gap_rows = (
        await session.execute(
            text(
                "SELECT gap_from, gap_to, count(*) OVER () FROM coverage_gaps"
                " WHERE user_id = :user_id AND gap_from < :end AND gap_to > :start"
                " ORDER BY gap_from DESC LIMIT :limit"
            ),
            {**scope.params, "limit": MAX_GAPS},
        )
    ).all()
    return Coverage(
        first_played_at=bounds[0],
        last_played_at=bounds[1],
        days=scope.window.view.days,
        active_days=hourly.totals.active_days,
        days_with_rows=len(days),
        longest_silence_days=_longest_silence([day.day for day in days]),
        rows_by_source={"spotify_api": api, "import_zip": total - api},
        recorded_gaps=gap_rows[0][2] if gap_rows else 0,
        gaps=[
            GapView(start=start, end=end, hours=round((end - start).total_seconds() / 3600, 2))
            for start, end, _ in gap_rows
        ],
    )


def _longest_silence(active: list[date]) -> int:
    longest = 0
    for before, after in itertools.pairwise(active):
        longest = max(longest, (after - before - timedelta(days=1)).days)
    return longest


@tool("history_coverage", path="coverage")
async def history_coverage(context: ToolContext, args: WindowArgs) -> CoverageResult:
    """How complete the stored history is over a window: first and last stored play, local
    days with a play and with any row, the longest stretch without a row, rows from
    Spotify's API versus exports, and the gaps the collector recorded (an export import
    fills them). Use it before trusting totals of a period, or to tell the user to import
    their Spotify data export."""
    scope = await open_scope(context, args)
    return CoverageResult(window=scope.window.view, coverage=await coverage(context, scope))
