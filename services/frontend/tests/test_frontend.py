from __future__ import annotations

import os
import subprocess
import sys

import pytest

from playlog.errors import ConfigurationError
from playlog.settings import load_settings
from playlog.testing.http import asgi_client
from playlog_frontend.app import create_app
from playlog_frontend.settings import FrontendSettings


async def test_healthz(admin_token: str) -> None:
    settings = FrontendSettings(admin_token=admin_token)
    async with asgi_client(create_app(settings)) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_frontend_refuses_to_start_without_admin_credentials() -> None:
    with pytest.raises(ConfigurationError, match="ADMIN_TOKEN is required"):
        load_settings(FrontendSettings)


def test_api_base_url_must_be_http(monkeypatch: pytest.MonkeyPatch, admin_token: str) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", admin_token)
    monkeypatch.setenv("API_BASE_URL", "ftp://api")
    with pytest.raises(ConfigurationError, match="API_BASE_URL"):
        load_settings(FrontendSettings)


def test_frontend_does_not_load_database_code() -> None:
    """The frontend reaches data only through the api, never through the database."""
    check = (
        "import sys, playlog_frontend.app, playlog_frontend.__main__;"
        "loaded = [m for m in ('sqlalchemy', 'asyncpg', 'alembic', 'playlog.db')"
        " if m in sys.modules];"
        "print(','.join(loaded))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", check],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == ""
