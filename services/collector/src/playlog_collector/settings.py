"""Settings of the collector service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, model_validator

from playlog.settings import (
    DatabaseLogSettings,
    DatabaseSettings,
    EncryptionSettings,
    ImportSettings,
    LoggingSettings,
    SpotifyAppSettings,
    StorageSettings,
)


class CollectorSettings(
    DatabaseSettings,
    EncryptionSettings,
    LoggingSettings,
    DatabaseLogSettings,
    StorageSettings,
    ImportSettings,
    SpotifyAppSettings,
):
    # Unique per replica; the default (service@host:pid) is unique already.
    collector_id: str | None = None
    collector_heartbeat_seconds: float = Field(default=10.0, gt=0, le=300)
    # Seconds between two polls of one user; each run is jittered by ±10 %.
    collector_interval_seconds: float = Field(default=600.0, ge=1, le=86_400)
    # Users worked on at the same time by one collector process.
    collector_concurrency: int = Field(default=8, ge=1, le=256)
    # How long a claim on a user is valid without renewal; a crashed replica's users
    # are picked up by others after this.
    collector_lease_seconds: float = Field(default=120.0, ge=5, le=3600)
    # Longest wait after repeated failures of one user (doubling from 60 s).
    collector_max_backoff_seconds: float = Field(default=3600.0, ge=60, le=86_400)
    # Fall-back scan for due work when no notification arrives.
    collector_scan_seconds: float = Field(default=5.0, gt=0, le=300)

    initial_sync_enabled: bool = True
    # Stop paging back once plays are older than this many days.
    initial_sync_max_days: int = Field(default=30, ge=1, le=36_500)
    initial_sync_max_requests: int = Field(default=200, ge=1, le=100_000)
    # Stop when a page adds nothing new.
    initial_sync_stop_on_no_progress: bool = True
    # Initial syncs run at the same time by one collector process.
    initial_sync_concurrency: int = Field(default=2, ge=1, le=64)

    # ZIPs dropped into IMPORT_WATCH_DIR/<user id>/ are moved to UPLOAD_DIR and imported.
    import_watch_dir: Path | None = None
    # A job whose worker died is re-run this many times in all before it is marked failed.
    import_max_attempts: int = Field(default=3, ge=1, le=100)

    @property
    def collector_lease(self) -> timedelta:
        return timedelta(seconds=self.collector_lease_seconds)

    @model_validator(mode="after")
    def _lease_outlasts_rate_limit_waits(self) -> CollectorSettings:
        # A run may sleep through a Retry-After; its lease must not lapse meanwhile.
        if self.collector_lease_seconds <= self.spotify_max_retry_after_seconds + 10:
            raise ValueError(
                "COLLECTOR_LEASE_SECONDS must exceed SPOTIFY_MAX_RETRY_AFTER_SECONDS by more "
                "than 10 seconds"
            )
        return self
