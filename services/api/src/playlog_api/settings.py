"""Settings of the api service."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

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
    # Where clients reach the api: MCP accepts this host (and loopback) and the ChatGPT
    # action document names it as its server.
    api_public_url: str = "http://127.0.0.1:8000"

    @field_validator("api_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        parsed = urlsplit(value)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError("must be an http(s) URL such as https://playlog.example.com")
        if parsed.path not in {"", "/"} or parsed.query or parsed.fragment:
            raise ValueError("must be the api's origin only, without a path")
        return value.rstrip("/")
