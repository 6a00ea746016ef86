"""Settings of the api service."""

from __future__ import annotations

from pydantic import Field

from playlog.settings import (
    AdminAuthSettings,
    DatabaseLogSettings,
    DatabaseSettings,
    EncryptionSettings,
    ImportSettings,
    LoggingSettings,
    SpotifySettings,
    StorageSettings,
)


class ApiSettings(
    DatabaseSettings,
    EncryptionSettings,
    AdminAuthSettings,
    LoggingSettings,
    DatabaseLogSettings,
    StorageSettings,
    ImportSettings,
    SpotifySettings,
):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
