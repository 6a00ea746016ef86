"""Fixtures of the shared package's tests that run the ``playlog`` command."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.testing.exports import delete_users_and_their_catalog
from playlog.testing.processes import run_playlog


@pytest_asyncio.fixture
async def user(database_url: str, db_engine: AsyncEngine) -> AsyncIterator[str]:
    """A user created by ``playlog users add`` (committed); deleted with all it owns."""
    created = run_playlog(database_url, "users", "add", "--name", "CLI user")
    assert created.returncode == 0, created.stderr
    yield created.stdout.strip()
    await delete_users_and_their_catalog(db_engine, [uuid.UUID(created.stdout.strip())])
