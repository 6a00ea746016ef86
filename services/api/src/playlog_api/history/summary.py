"""``history_taste_summary``: the one-call overview of a user's listening."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from playlog_api.history import queries
from playlog_api.history.coverage import Coverage, coverage
from playlog_api.history.schemas import (
    ArtistCount,
    Heatmap,
    LimitedWindowArgs,
    RepeatStats,
    Totals,
    TrackCount,
)
from playlog_api.history.totals import open_scope
from playlog_api.history.window import WindowView
from playlog_api.tools.registry import ToolContext, tool


class TasteSummary(BaseModel):
    window: WindowView
    plays: int
    unique_tracks: int
    unique_artists: int
    totals: Totals
    top_artists: list[ArtistCount]
    top_tracks: list[TrackCount]
    repeat: RepeatStats
    heatmap: Heatmap
    coverage: Coverage
    audio_profile: dict[str, Any] | None = Field(
        description="Always null: Spotify closed audio features to new apps in Nov 2024."
    )
    clusters: list[dict[str, Any]] | None = Field(
        description="Always null: needs audio features, which Spotify no longer provides."
    )


@tool("history_taste_summary", path="taste-summary")
async def history_taste_summary(context: ToolContext, args: LimitedWindowArgs) -> TasteSummary:
    """A one-call overview of the user's listening over a window: plays, top artists and
    tracks, repeats, a weekday x hour heatmap and coverage. The window defaults to the last
    90 days (days=36500 for all time). Plays follow the 30-second rule; skips, listening
    hours and distinct tracks and artists are included, and the heatmap uses the user's time
    zone. Start here for questions like "analyse my last 90 days" or "what is my taste"."""
    scope = await open_scope(context, args)
    music, hourly = await context.sessions.both(
        lambda session: queries.music(session, scope, args.limit),
        lambda session: queries.hourly(session, scope),
    )
    return TasteSummary(
        window=scope.window.view,
        plays=hourly.totals.plays,
        unique_tracks=music.unique_tracks,
        unique_artists=music.unique_artists,
        totals=hourly.totals,
        top_artists=music.top_artists,
        top_tracks=music.top_tracks,
        repeat=music.repeat,
        heatmap=hourly.heatmap,
        coverage=await coverage(context, scope, hourly),
        audio_profile=None,
        clusters=None,
    )
