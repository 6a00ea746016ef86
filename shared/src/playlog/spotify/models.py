"""Pydantic models of the Spotify responses Playlog reads.

Only the fields Playlog uses are declared; unknown fields are ignored, so additions on
Spotify's side never break parsing. Fields Spotify removed for development-mode apps
(email, country, product, popularity, followers) are optional.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from playlog.text import storable


class SpotifyModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Text as PostgreSQL stores it: a local file's names come from its tags, which may
    # hold NULs, and Spotify passes them on (a page would fail on every poll).
    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if isinstance(value, str):
            return storable(value)
        if isinstance(value, list) and value and isinstance(value[0], str):
            return [storable(item) for item in value]
        return value


class Image(SpotifyModel):
    url: str
    height: int | None = None
    width: int | None = None


class SimplifiedArtist(SpotifyModel):
    id: str | None = None
    name: str
    uri: str | None = None


class SimplifiedAlbum(SpotifyModel):
    id: str | None = None
    name: str
    uri: str | None = None
    album_type: str | None = None
    release_date: str | None = None
    images: list[Image] = []
    artists: list[SimplifiedArtist] = []


class Track(SpotifyModel):
    # Local files have no id.
    id: str | None = None
    name: str
    uri: str
    duration_ms: int
    explicit: bool = False
    is_local: bool = False
    album: SimplifiedAlbum | None = None
    artists: list[SimplifiedArtist] = []


class Artist(SpotifyModel):
    id: str
    name: str
    uri: str
    genres: list[str] = []
    images: list[Image] = []


class Context(SpotifyModel):
    type: str
    uri: str


class PlayHistory(SpotifyModel):
    track: Track
    # End of playback, UTC.
    played_at: datetime
    context: Context | None = None


class Cursors(SpotifyModel):
    # Millisecond timestamps, sent as strings.
    after: str | None = None
    before: str | None = None


class RecentlyPlayed(SpotifyModel):
    items: list[PlayHistory]
    next: str | None = None
    # None when there is nothing more to page through.
    cursors: Cursors | None = None
    limit: int
    href: str


class PagedTracks(SpotifyModel):
    items: list[Track]
    total: int
    limit: int
    offset: int
    next: str | None = None


class PagedArtists(SpotifyModel):
    items: list[Artist]
    total: int
    limit: int
    offset: int
    next: str | None = None


class PagedAlbums(SpotifyModel):
    items: list[SimplifiedAlbum]
    total: int
    limit: int
    offset: int
    next: str | None = None


class SearchResults(SpotifyModel):
    tracks: PagedTracks | None = None
    artists: PagedArtists | None = None
    albums: PagedAlbums | None = None


class CurrentUser(SpotifyModel):
    id: str
    display_name: str | None = None
    uri: str
    # Not returned to development-mode apps since 2026; kept when present.
    email: str | None = None
    country: str | None = None
    product: str | None = None
    images: list[Image] = []


class TokenResponse(SpotifyModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str = ""
    # Present on the code exchange; on refresh only when Spotify rotates it.
    refresh_token: str | None = None
