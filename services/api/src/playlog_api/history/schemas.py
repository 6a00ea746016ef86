"""Output pieces shared by several tools. Units are in the field names."""

from __future__ import annotations

from typing import Annotated, SupportsInt

from pydantic import BaseModel, Field

from playlog_api.history.window import WindowArgs

MAX_LIMIT = 50
MS_PER_HOUR = 3_600_000

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"How many rows (1-{MAX_LIMIT}).")]


def hours(ms: SupportsInt) -> float:
    """Milliseconds as hours to 2 places. SQL sums arrive as Decimal: int() first, so every
    figure is rounded the same (binary) way."""
    return round(int(ms) / MS_PER_HOUR, 2)


def share(part: int, whole: int) -> float:
    """``part / whole`` to 4 places; 0.0 when there is no whole."""
    return round(part / whole, 4) if whole else 0.0


class LimitedWindowArgs(WindowArgs):
    limit: Limit = 10


class Totals(BaseModel):
    plays: int = Field(description="Rows with ms_played ≥ 30 s or unknown.")
    skips: int = Field(description="Rows under 30 s: kept, not counted as plays.")
    listening_hours: float = Field(
        description="Listening time of every row (plays and skips) in hours: ms_played, or "
        "the estimate for API plays."
    )
    estimated_hours: float = Field(
        description="Part of listening_hours estimated for API plays without ms_played."
    )
    active_days: int = Field(description="Local days with at least one play.")


class TrackCount(BaseModel):
    track_id: str
    name: str
    artist: str | None
    album: str | None
    plays: int
    hours: float


class ArtistCount(BaseModel):
    artist_id: str
    name: str
    plays: int
    hours: float
    tracks: int = Field(description="Distinct tracks of the artist played.")


class AlbumCount(BaseModel):
    album: str
    artist: str | None
    plays: int
    hours: float
    tracks: int


class RepeatStats(BaseModel):
    plays: int = Field(description="Music plays in the window.")
    unique_tracks: int
    repeat_rate: float = Field(description="Share of plays that repeat a track: 1 - unique/plays.")
    plays_per_track: float
    tracks_played_once: int
    tracks_played_10_plus: int
    most_plays_of_one_track: int


class Heatmap(BaseModel):
    tz: str
    weekdays: list[str]
    plays: list[list[int]] = Field(description="7 rows (Mon…Sun) x 24 local hours of plays.")
    by_weekday: list[int]
    by_hour: list[int]
    peak_weekday: str | None
    peak_hour: int | None
