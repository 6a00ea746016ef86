"""``history_compare_periods``: two windows side by side, and what changed between them.

Each period is an ordinary window (whole local days, DST-exact) with its own ``Scope``,
so its numbers come from the same ``queries`` as every other tool and agree with them.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Self

from pydantic import BaseModel, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.errors import ValidationFailed
from playlog_api.history import queries
from playlog_api.history.schemas import ArtistCount, Limit, TrackCount
from playlog_api.history.totals import Scope, load_scope
from playlog_api.history.window import (
    EPOCH,
    MAX_DAYS,
    Tz,
    WindowView,
    check_days,
    days_window,
    zone,
)
from playlog_api.tools.registry import ToolArgs, ToolContext, tool

_DATE_NAMES = ("a_start", "a_end", "b_start", "b_end")
# The longest ``days`` whose period B (the N days before the last N) starts on EPOCH or
# later since 2026-11: half the days from EPOCH then, rounded down to a hundred. It only
# grows with time; the check in ``periods`` holds for any clock.
LONGEST_DAYS = 4_900


class ComparePeriodsArgs(ToolArgs):
    """Either ``days`` or all four dates, never both."""

    a_start: date | None = Field(default=None, description="Period A: first day (YYYY-MM-DD).")
    a_end: date | None = Field(default=None, description="Period A: last day, inclusive.")
    b_start: date | None = Field(default=None, description="Period B: first day.")
    b_end: date | None = Field(default=None, description="Period B: last day, inclusive.")
    days: int | None = Field(
        default=None,
        ge=1,
        le=LONGEST_DAYS,
        description="Shorthand: A is the last N days (today included), B the N days before "
        f"(at most {LONGEST_DAYS}, so that B starts in {EPOCH.year} or later).",
    )
    tz: Tz = None
    limit: Limit = 5

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        dates = dict(
            zip(_DATE_NAMES, (self.a_start, self.a_end, self.b_start, self.b_end), strict=True)
        )
        given = [name for name, day in dates.items() if day is not None]
        if self.days is not None and given:
            raise ValueError("give either days or a_start/a_end/b_start/b_end, not both")
        if self.days is None and len(given) < len(dates):
            missing = ", ".join(name for name in _DATE_NAMES if name not in given)
            raise ValueError(
                f"give days, or all of a_start, a_end, b_start and b_end (missing: {missing})"
            )
        check_days(dates)
        for label, first, last in (
            ("a", self.a_start, self.a_end),
            ("b", self.b_start, self.b_end),
        ):
            if first is None or last is None:
                continue
            if first > last:
                raise ValueError(f"{label}_start ({first}) is after {label}_end ({last})")
            if (last - first).days + 1 > MAX_DAYS:
                raise ValueError(f"period {label.upper()} is longer than {MAX_DAYS} days")
        return self


class Period(BaseModel):
    window: WindowView
    plays: int
    skips: int
    listening_hours: float
    unique_tracks: int
    unique_artists: int
    top_artists: list[ArtistCount]
    top_tracks: list[TrackCount]


class Change(BaseModel):
    plays_delta: int = Field(description="A minus B.")
    plays_percent: float | None = Field(description="Relative to B; null when B has none.")
    listening_hours_delta: float
    new_top_artists: list[str] = Field(description="In A's top artists, not in B's.")
    dropped_top_artists: list[str] = Field(description="In B's top artists, not in A's.")
    common_top_artists: list[str]


class Comparison(BaseModel):
    a: Period
    b: Period
    change: Change


def periods(args: ComparePeriodsArgs, today: date) -> tuple[tuple[date, date], tuple[date, date]]:
    """The two periods' first and last local days."""
    n = args.days
    if n is None:
        if args.a_start and args.a_end and args.b_start and args.b_end:
            return (args.a_start, args.a_end), (args.b_start, args.b_end)
        raise ValidationFailed("give days, or all of a_start, a_end, b_start and b_end")
    b_first = today - timedelta(days=2 * n - 1)
    if b_first < EPOCH:
        longest = ((today - EPOCH).days + 1) // 2
        raise ValidationFailed(
            f"invalid arguments for history_compare_periods: days: period B would start "
            f"before {EPOCH}; use at most {longest} days"
        )
    return (today - timedelta(days=n - 1), today), (b_first, today - timedelta(days=n))


async def period(session: AsyncSession, scope: Scope, limit: int) -> Period:
    # Two statements per period: per-hour totals, and the music lists in one pass.
    totals = await queries.totals(session, scope)
    music = await queries.music(session, scope, limit)
    return Period(
        window=scope.window.view,
        plays=totals.plays,
        skips=totals.skips,
        listening_hours=totals.listening_hours,
        unique_tracks=music.unique_tracks,
        unique_artists=music.unique_artists,
        top_artists=music.top_artists,
        top_tracks=music.top_tracks,
    )


def change(a: Period, b: Period) -> Change:
    a_names = [artist.name for artist in a.top_artists]
    b_names = [artist.name for artist in b.top_artists]
    return Change(
        plays_delta=a.plays - b.plays,
        plays_percent=round((a.plays - b.plays) * 100 / b.plays, 1) if b.plays else None,
        listening_hours_delta=round(a.listening_hours - b.listening_hours, 2),
        new_top_artists=[name for name in a_names if name not in b_names],
        dropped_top_artists=[name for name in b_names if name not in a_names],
        common_top_artists=[name for name in a_names if name in b_names],
    )


@tool("history_compare_periods", path="compare-periods")
async def history_compare_periods(context: ToolContext, args: ComparePeriodsArgs) -> Comparison:
    """Compares the user's listening in two periods A and B: plays, skips, hours, distinct
    tracks and artists and top artists and tracks of each, and the change from B to A (plays
    and hours, artists new to or gone from the top list). Give a_start/a_end/b_start/b_end,
    or days=N for the last N days against the N days before."""
    tz = zone(args.tz or context.user.timezone)
    (a_first, a_last), (b_first, b_last) = periods(args, context.now.astimezone(tz).date())
    window_a = days_window(a_first, a_last, tz)
    scope_a = await load_scope(context.session, context.user.id, window_a)
    # The user's first and last play do not depend on the window: probe them once.
    scope_b = dataclasses.replace(scope_a, window=days_window(b_first, b_last, tz))
    a, b = await context.sessions.both(
        lambda session: period(session, scope_a, args.limit),
        lambda session: period(session, scope_b, args.limit),
    )
    return Comparison(a=a, b=b, change=change(a, b))
