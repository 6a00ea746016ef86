"""All tables. Importing this package registers every model on ``Base.metadata``."""

from playlog.db.models.auth import OAuthClient, OAuthGrant, OAuthState
from playlog.db.models.base import Base
from playlog.db.models.catalog import Artist, Track, TrackArtist, TrackLookup
from playlog.db.models.imports import ImportedMember, ImportJob
from playlog.db.models.logs import LogRecord
from playlog.db.models.plays import Play
from playlog.db.models.rollups import PlayHour, PlayTrack
from playlog.db.models.sync import CoverageGap, JobRun, SyncCheckpoint, WorkerHeartbeat
from playlog.db.models.users import ApiToken, SpotifyToken, User

__all__ = [
    "ApiToken",
    "Artist",
    "Base",
    "CoverageGap",
    "ImportJob",
    "ImportedMember",
    "JobRun",
    "LogRecord",
    "OAuthClient",
    "OAuthGrant",
    "OAuthState",
    "Play",
    "PlayHour",
    "PlayTrack",
    "SpotifyToken",
    "SyncCheckpoint",
    "Track",
    "TrackArtist",
    "TrackLookup",
    "User",
    "WorkerHeartbeat",
]
