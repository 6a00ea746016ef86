"""Settings of the collector service."""

from __future__ import annotations

from pydantic import Field

from playlog.settings import DatabaseSettings, EncryptionSettings, LoggingSettings


class CollectorSettings(DatabaseSettings, EncryptionSettings, LoggingSettings):
    # Unique per replica; the default (service@host:pid) is unique already.
    collector_id: str | None = None
    collector_heartbeat_seconds: float = Field(default=10.0, gt=0, le=300)
