"""Settings of the frontend service. It reaches data only through the api."""

from __future__ import annotations

from pydantic import Field, HttpUrl

from playlog.settings import AdminAuthSettings, LoggingSettings


class FrontendSettings(AdminAuthSettings, LoggingSettings):
    frontend_host: str = "127.0.0.1"
    frontend_port: int = Field(default=8001, ge=1, le=65535)
    api_base_url: HttpUrl = HttpUrl("http://127.0.0.1:8000")
