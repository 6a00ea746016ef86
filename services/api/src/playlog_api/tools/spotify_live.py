"""Live questions to Spotify as the user: their top items as Spotify ranks them, and a
catalogue search with the user's own plays of each track found.

Unlike the history tools these call Spotify, so they need a configured Spotify app and
a connected user, and can fail the ways Spotify fails. Every failure becomes a domain
error with a message written here: no token, e-mail address or upstream payload leaks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, StringConstraints, field_validator
from sqlalchemy import text

from playlog.errors import Conflict
from playlog.spotify.client import SEARCH_LIMIT_MAX, SearchType, SpotifyClient, TokenSource
from playlog.spotify.models import Artist, PagedArtists, PagedTracks, SimplifiedAlbum, Track
from playlog.spotify.tokens import ReauthRequired, UserTokens
from playlog_api.admin.users import spotify_status
from playlog_api.history.schemas import Limit, hours
from playlog_api.spotify_calls import SPOTIFY_FAILURES, configured, spotify_failures
from playlog_api.tools.registry import ToolArgs, ToolContext, tool

T = TypeVar("T")

NOT_CONNECTED = (
    "this user has not connected a Spotify account: connect Spotify (sign in at /auth/login) "
    "to use the live Spotify tools; the stored history tools work without it"
)
RECONNECT = (
    "Spotify access for this user has expired or was revoked: reconnect Spotify (sign in "
    "again at /auth/login); the stored history tools keep working meanwhile"
)

# One row per track id: the user's whole stored history of it (the running totals).
_IN_HISTORY = text(
    "SELECT track_id, rows, plays, listening_ms, first_played_at, last_played_at"
    " FROM play_tracks WHERE user_id = :user_id AND track_id = ANY(:track_ids)"
)


class SpotifyNotConnected(Conflict):
    code = "spotify_not_connected"


# The answers of the live tools when Spotify cannot be asked.
SPOTIFY_ERRORS = {
    409: "The user has not connected Spotify, or must connect it again.",
    **SPOTIFY_FAILURES,
}


class ArtistRef(BaseModel):
    id: str | None
    name: str


class AlbumRef(BaseModel):
    id: str | None
    name: str


class SpotifyTrack(BaseModel):
    id: str | None = Field(description="Spotify track id; null for local files.")
    name: str
    artists: list[ArtistRef]
    album: AlbumRef | None
    uri: str


class SpotifyArtist(BaseModel):
    id: str
    name: str
    uri: str


class SpotifyAlbum(BaseModel):
    id: str | None
    name: str
    artists: list[ArtistRef]
    release_date: str | None
    uri: str | None


class SpotifyTopArgs(ToolArgs):
    entity: Literal["tracks", "artists"] = Field(
        default="tracks", description="Rank tracks or artists."
    )
    time_range: Literal["short_term", "medium_term", "long_term"] = Field(
        default="medium_term",
        description="Spotify's own periods: short_term is about the last 4 weeks, "
        "medium_term about 6 months, long_term about 1 year.",
    )
    limit: Limit = 10


class SpotifyTop(BaseModel):
    entity: str
    time_range: str
    total: int = Field(description="How many items Spotify ranks for this period.")
    tracks: list[SpotifyTrack] = Field(description="Best first; empty when entity=artists.")
    artists: list[SpotifyArtist] = Field(description="Best first; empty when entity=tracks.")


def _tracks_only() -> list[SearchType]:
    return ["track"]


Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class SpotifySearchArgs(ToolArgs):
    query: Query = Field(description="What to look for, e.g. a song title and artist.")
    types: list[SearchType] = Field(
        default_factory=_tracks_only,
        min_length=1,
        max_length=3,
        description="What kinds of items to search: track, artist, album (default track).",
    )
    limit: int = Field(
        default=5,
        ge=1,
        le=SEARCH_LIMIT_MAX,
        description=f"Results per type (1-{SEARCH_LIMIT_MAX}: Spotify caps search for "
        "apps in development mode at 10).",
    )

    @field_validator("types", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        # Accept "track,artist" too (Spotify's own syntax, which callers often copy), and
        # a type named twice once.
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            parts = (part.strip() for item in value for part in str(item).split(","))
            return list(dict.fromkeys(part for part in parts if part))
        return value


class InHistory(BaseModel):
    plays: int = Field(description="Stored plays of this exact track id (30-second rule).")
    skips: int = Field(description="Stored rows under 30 s.")
    hours: float
    first_played_at: datetime | None
    last_played_at: datetime | None


class SearchTrack(SpotifyTrack):
    in_history: InHistory | None = Field(
        description="The user's stored history of this track id, all time; null when it "
        "was never stored. Another release of the same song has another id."
    )


class SpotifySearch(BaseModel):
    query: str
    tracks: list[SearchTrack]
    artists: list[SpotifyArtist]
    albums: list[SpotifyAlbum]


def _artists(artists: Sequence[Any]) -> list[ArtistRef]:
    return [ArtistRef(id=artist.id, name=artist.name) for artist in artists]


def _track(track: Track) -> SpotifyTrack:
    album = AlbumRef(id=track.album.id, name=track.album.name) if track.album else None
    return SpotifyTrack(
        id=track.id, name=track.name, artists=_artists(track.artists), album=album, uri=track.uri
    )


def _artist(artist: Artist) -> SpotifyArtist:
    # Genres and popularity are left out: Spotify stopped sending them reliably to apps
    # in development mode, and an empty list would read as "this artist has none".
    return SpotifyArtist(id=artist.id, name=artist.name, uri=artist.uri)


def _album(album: SimplifiedAlbum) -> SpotifyAlbum:
    return SpotifyAlbum(
        id=album.id,
        name=album.name,
        artists=_artists(album.artists),
        release_date=album.release_date,
        uri=album.uri,
    )


async def call_spotify(
    context: ToolContext, call: Callable[[SpotifyClient, TokenSource], Awaitable[T]]
) -> T:
    """Run ``call`` as the context's user, with Spotify's failures as domain errors."""
    client = configured(context.spotify)
    # Checked first so a user who never connected, or whose refresh token is known to be
    # dead, gets a clear answer without a round trip to Spotify.
    _, status = await spotify_status(context.session, context.user.id)
    if status.state == "not_connected":
        raise SpotifyNotConnected(NOT_CONNECTED)
    if status.state == "needs_reauth":
        raise ReauthRequired(RECONNECT)
    tokens = UserTokens(context.sessionmaker, context.cipher, client, context.user.id)
    try:
        with spotify_failures():
            return await call(client, tokens)
    except ReauthRequired:
        # Its own message may quote Spotify's reason; ours says what to do.
        raise ReauthRequired(RECONNECT) from None


@tool("spotify_get_top", path="spotify-top", errors=SPOTIFY_ERRORS)
async def spotify_get_top(context: ToolContext, args: SpotifyTopArgs) -> SpotifyTop:
    """The user's top tracks or artists as Spotify itself ranks them (live from Spotify)
    for about the last 4 weeks (short_term), 6 months (medium_term) or 1 year (long_term).
    Spotify's ranking is its own and not explained; for counted plays over any window use
    history_top_tracks or history_top_artists. Needs a connected Spotify account. Items
    carry ids, names and URIs only: Spotify no longer gives this app popularity or
    genres."""
    page = await call_spotify(
        context,
        lambda client, tokens: client.top(
            tokens, args.entity, time_range=args.time_range, limit=args.limit
        ),
    )
    tracks = [_track(item) for item in page.items] if isinstance(page, PagedTracks) else []
    artists = [_artist(item) for item in page.items] if isinstance(page, PagedArtists) else []
    return SpotifyTop(
        entity=args.entity,
        time_range=args.time_range,
        total=page.total,
        tracks=tracks,
        artists=artists,
    )


async def _in_history(context: ToolContext, tracks: list[SpotifyTrack]) -> dict[str, InHistory]:
    track_ids = sorted({track.id for track in tracks if track.id})
    if not track_ids:
        return {}
    rows = await context.session.execute(
        _IN_HISTORY, {"user_id": context.user.id, "track_ids": track_ids}
    )
    return {
        track_id: InHistory(
            plays=plays,
            skips=stored - plays,
            hours=hours(listening_ms),
            first_played_at=first,
            last_played_at=last,
        )
        for track_id, stored, plays, listening_ms, first, last in rows
    }


@tool("spotify_search", path="spotify-search", errors=SPOTIFY_ERRORS)
async def spotify_search(context: ToolContext, args: SpotifySearchArgs) -> SpotifySearch:
    """Search Spotify's catalogue (live) for tracks, artists or albums, and say for each
    track found how often the user has played it (all stored history). Use it for "have I
    ever heard X?" or to find the Spotify id of a song, artist or album. At most 10 results
    per type (Spotify's cap for apps in development mode). Needs a connected Spotify
    account."""
    results = await call_spotify(
        context,
        lambda client, tokens: client.search(tokens, args.query, args.types, limit=args.limit),
    )
    tracks = [_track(item) for item in results.tracks.items] if results.tracks else []
    history = await _in_history(context, tracks)
    return SpotifySearch(
        query=args.query,
        tracks=[
            SearchTrack(
                **track.model_dump(), in_history=history.get(track.id) if track.id else None
            )
            for track in tracks
        ],
        artists=[_artist(item) for item in results.artists.items] if results.artists else [],
        albums=[_album(item) for item in results.albums.items] if results.albums else [],
    )
