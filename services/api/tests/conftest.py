from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db.models import User
from playlog.testing.factories import add_user
from playlog.testing.history import token_headers
from playlog.testing.http import asgi_client
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    """The UPLOAD_DIR of the test's app: empty, and only the test's."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture
def api_settings(
    database_url: str, encryption_key: str, admin_token: str, uploads: Path
) -> ApiSettings:
    return ApiSettings(
        database_url=database_url,
        token_encryption_key=encryption_key,
        admin_token=admin_token,
        upload_dir=uploads,
        api_public_url="http://testserver",
    )


@pytest_asyncio.fixture
async def client(
    api_settings: ApiSettings, db_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_app(api_settings, sessionmaker=db_sessionmaker)) as client:
        yield client


@pytest.fixture
def admin(admin_token: str) -> dict[str, str]:
    """Headers that authenticate as the admin."""
    return {"Authorization": f"Bearer {admin_token}"}


@pytest_asyncio.fixture
async def listener(db_session: AsyncSession) -> User:
    """A user in Europe/Berlin (a zone with daylight saving) with no history yet."""
    user = await add_user(db_session, "Listener", authorized_days_ago=None, checkpoint=None)
    user.timezone = "Europe/Berlin"
    await db_session.flush()
    return user


@pytest_asyncio.fixture
async def personal(db_session: AsyncSession, listener: User) -> dict[str, str]:
    """Headers that authenticate with a personal access token of ``listener``."""
    return await token_headers(db_session, listener.id)
