"""Pytest fixtures: a migrated PostgreSQL database and a rolled-back transaction per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from playlog.db.engine import create_engine
from playlog.db.migrate import upgrade
from playlog.testing.postgres import PostgresServer, find_server

# Variables read by Playlog settings; cleared for every test so the developer's shell
# cannot change what a test sees.
_SETTINGS_PREFIXES = (
    "ADMIN_",
    "API_",
    "AUTH_",
    "COLLECTOR_",
    "FRONTEND_",
    "IMPORT_",
    "INITIAL_SYNC_",
    "LOG_",
    "PLAYLOG_",
    "SPOTIFY_",
)
# Test configuration, not service settings.
_KEEP = {"SPOTIFY_OPENAPI_SPEC"}
_SETTINGS_NAMES = (
    "DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "DATABASE_ECHO",
    "TOKEN_ENCRYPTION_KEY",
    "UPLOAD_DIR",
)

DatabaseFactory = Callable[[], Awaitable[str]]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in _KEEP:
            continue
        if name in _SETTINGS_NAMES or name.startswith(_SETTINGS_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with find_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest_asyncio.fixture(scope="session")
async def database_factory(postgres_server: PostgresServer) -> AsyncIterator[DatabaseFactory]:
    """Creates empty databases on demand; all are dropped when the session ends."""
    yield postgres_server.create_database
    await postgres_server.drop_created()


@pytest_asyncio.fixture(scope="session")
async def database_url(database_factory: DatabaseFactory) -> str:
    """A database migrated to head with the real Alembic migrations, shared by the session."""
    url = await database_factory()
    engine = create_engine(url, pool_size=1)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


@pytest_asyncio.fixture(scope="session")
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def db_connection(db_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    async with db_engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def db_sessionmaker(db_connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions whose commits become savepoints of the test's outer transaction."""
    return async_sessionmaker(
        bind=db_connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )


@pytest_asyncio.fixture
async def db_session(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with db_sessionmaker() as session:
        yield session


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def admin_token() -> str:
    return "adm-" + Fernet.generate_key().decode()
