"""``history_year_in_review``: one calendar year of listening, wrapped up.

The year is January 1 to December 31 in the user's zone (or ``tz``), so a play at
00:30 on New Year's Day in Berlin belongs to the new year although it is still the old
one in UTC. Months, days and streaks come from the per-hour totals, the lists from the
shared queries, discoveries and podcasts from their own tools' functions.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, timedelta
from typing import Annotated

from pydantic import BaseModel, Field

from playlog.errors import ValidationFailed
from playlog_api.history import queries
from playlog_api.history.discoveries import DiscoveryCounts, discoveries
from playlog_api.history.podcasts import ShowListening, podcasts
from playlog_api.history.queries import Day
from playlog_api.history.schemas import AlbumCount, ArtistCount, Limit, TrackCount, hours
from playlog_api.history.totals import Scope, load_scope
from playlog_api.history.window import EPOCH, LAST_DAY, Tz, WindowView, days_window, zone
from playlog_api.tools.registry import ToolArgs, ToolContext, tool


class YearInReviewArgs(ToolArgs):
    year: Annotated[
        int | None,
        Field(
            ge=EPOCH.year,
            le=LAST_DAY.year,
            description="Calendar year (local time). Default: the current year.",
        ),
    ] = None
    tz: Tz = None
    limit: Limit = 5


class MonthTotals(BaseModel):
    month: int = Field(description="1-12.")
    plays: int
    hours: float


class BusiestDay(BaseModel):
    date: date
    plays: int
    hours: float


class Streak(BaseModel):
    days: int = Field(description="Consecutive local days with at least one play.")
    start: date
    end: date


class YearComparison(BaseModel):
    year: int
    plays: int
    hours: float
    plays_delta: int = Field(description="This year's plays minus that year's.")
    hours_delta: float


class YearInReview(BaseModel):
    year: int
    window: WindowView
    plays: int
    skips: int
    listening_hours: float
    estimated_hours: float = Field(description="Part of listening_hours estimated (API plays).")
    active_days: int
    unique_tracks: int
    unique_artists: int
    top_artists: list[ArtistCount]
    top_tracks: list[TrackCount]
    top_albums: list[AlbumCount]
    months: list[MonthTotals] = Field(description="12 entries, January first.")
    busiest_day: BusiestDay | None = Field(
        description="The day with most plays; a tie goes to more hours, then the earlier day."
    )
    longest_streak: Streak | None
    discoveries: DiscoveryCounts = Field(
        description="Tracks and artists first heard ever during the year."
    )
    top_podcast_show: ShowListening | None
    compared_to_previous_year: YearComparison | None = Field(
        description="Null when the previous year has no plays."
    )


def _months(days: list[Day]) -> list[MonthTotals]:
    plays = [0] * 12
    ms = [0] * 12
    for day in days:
        plays[day.day.month - 1] += day.plays
        ms[day.day.month - 1] += day.listening_ms
    return [MonthTotals(month=m + 1, plays=plays[m], hours=hours(ms[m])) for m in range(12)]


def _busiest(days: list[Day]) -> BusiestDay | None:
    # Most plays; among equals the longer listening, then the earlier day.
    active = [day for day in days if day.plays > 0]
    if not active:
        return None
    best = min(active, key=lambda day: (-day.plays, -day.listening_ms, day.day))
    return BusiestDay(date=best.day, plays=best.plays, hours=hours(best.listening_ms))


def _streak(days: list[Day]) -> Streak | None:
    # Days with only skips are not active, as in active_days. The earliest longest wins.
    active = [day.day for day in days if day.plays > 0]
    best: Streak | None = None
    runs = itertools.groupby(enumerate(active), key=lambda pair: pair[1] - timedelta(pair[0]))
    for _, run in runs:
        run_days = [day for _, day in run]
        if best is None or len(run_days) > best.days:
            best = Streak(days=len(run_days), start=run_days[0], end=run_days[-1])
    return best


def _previous(scope: Scope, year: int) -> Scope:
    # The same user facts, so no second probe of the plays index.
    window = days_window(date(year - 1, 1, 1), date(year - 1, 12, 31), scope.window.tz)
    return replace(scope, window=window)


@tool("history_year_in_review", path="year-in-review")
async def history_year_in_review(context: ToolContext, args: YearInReviewArgs) -> YearInReview:
    """A calendar year of the user's listening wrapped up: plays, skips, hours, active days,
    top artists, tracks and albums, month by month totals, the busiest day, the longest
    streak of listening days, discoveries, the top podcast show and the change against the
    year before. The year runs January 1 to December 31 in the user's time zone (or
    ``tz``); it defaults to the current year, which then counts up to today. Plays follow
    the 30-second rule; lists are music only. Use it for "my 2024 wrapped" questions."""
    tz = zone(args.tz or context.user.timezone)
    today = context.now.astimezone(tz).date()
    current = today.year
    year = args.year if args.year is not None else current
    if year > current:
        raise ValidationFailed(
            f"invalid arguments for history_year_in_review: year {year} is in the future "
            f"(it is {current} in {tz.key})"
        )
    session = context.session
    # The current year counts up to today: a play stamped later (a clock ahead) is not
    # in it yet, as in every other tool's window.
    window = days_window(date(year, 1, 1), min(date(year, 12, 31), today), tz)
    scope = await load_scope(session, context.user.id, window)
    # Totals and days share one statement over the per-hour totals; the music lists one
    # pass over the per-track totals (the costly part of a year that is not all time).
    hourly = await queries.hourly(session, scope)
    totals, days = hourly.totals, hourly.days
    music = await queries.music(session, scope, args.limit)
    shows = (await podcasts(session, scope, 1)).shows
    previous = await queries.totals(session, _previous(scope, year))
    return YearInReview(
        year=year,
        window=scope.window.view,
        plays=totals.plays,
        skips=totals.skips,
        listening_hours=totals.listening_hours,
        estimated_hours=totals.estimated_hours,
        active_days=totals.active_days,
        unique_tracks=music.unique_tracks,
        unique_artists=music.unique_artists,
        top_artists=music.top_artists,
        top_tracks=music.top_tracks,
        top_albums=await queries.top_albums(session, scope, args.limit),
        months=_months(days),
        busiest_day=_busiest(days),
        longest_streak=_streak(days),
        discoveries=(await discoveries(session, scope, 1)).counts,
        top_podcast_show=shows[0] if shows else None,
        compared_to_previous_year=YearComparison(
            year=year - 1,
            plays=previous.plays,
            hours=previous.listening_hours,
            plays_delta=totals.plays - previous.plays,
            hours_delta=round(totals.listening_hours - previous.listening_hours, 2),
        )
        if previous.plays
        else None,
    )
