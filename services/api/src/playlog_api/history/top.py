"""Top lists: artists, tracks, albums, and the weekday x hour heatmap."""

from __future__ import annotations

from pydantic import BaseModel

from playlog_api.history import queries
from playlog_api.history.schemas import (
    AlbumCount,
    ArtistCount,
    Heatmap,
    LimitedWindowArgs,
    TrackCount,
)
from playlog_api.history.totals import open_scope
from playlog_api.history.window import WindowArgs, WindowView
from playlog_api.tools.registry import ToolContext, tool


class TopArtists(BaseModel):
    window: WindowView
    artists: list[ArtistCount]


class TopTracks(BaseModel):
    window: WindowView
    tracks: list[TrackCount]


class TopAlbums(BaseModel):
    window: WindowView
    albums: list[AlbumCount]


class HeatmapResult(BaseModel):
    window: WindowView
    heatmap: Heatmap


@tool("history_top_artists", path="top-artists")
async def history_top_artists(context: ToolContext, args: LimitedWindowArgs) -> TopArtists:
    """The user's most played artists over a window, by plays (30-second rule), with
    listening hours and how many of each artist's tracks were played. Music only; an
    artist is credited for tracks where they are the primary artist."""
    scope = await open_scope(context, args)
    artists = await queries.top_artists(context.session, scope, args.limit)
    return TopArtists(window=scope.window.view, artists=artists)


@tool("history_top_tracks", path="top-tracks")
async def history_top_tracks(context: ToolContext, args: LimitedWindowArgs) -> TopTracks:
    """The user's most played tracks over a window, by plays (30-second rule), with artist,
    album and listening hours. Music only; podcasts are in history_podcasts."""
    scope = await open_scope(context, args)
    tracks = await queries.top_tracks(context.session, scope, args.limit)
    return TopTracks(window=scope.window.view, tracks=tracks)


@tool("history_top_albums", path="top-albums")
async def history_top_albums(context: ToolContext, args: LimitedWindowArgs) -> TopAlbums:
    """The user's most played albums over a window, by plays of their tracks (30-second
    rule), with the album's artist, listening hours and how many of its tracks were
    played."""
    scope = await open_scope(context, args)
    albums = await queries.top_albums(context.session, scope, args.limit)
    return TopAlbums(window=scope.window.view, albums=albums)


@tool("history_listening_heatmap", path="heatmap")
async def history_listening_heatmap(context: ToolContext, args: WindowArgs) -> HeatmapResult:
    """When the user listens: plays per weekday (Mon-Sun) and local hour (0-23) over a
    window, in the user's time zone or ``tz`` (daylight saving handled), with totals per
    weekday and per hour and the busiest weekday and hour."""
    scope = await open_scope(context, args)
    return HeatmapResult(
        window=scope.window.view, heatmap=await queries.heatmap(context.session, scope)
    )
