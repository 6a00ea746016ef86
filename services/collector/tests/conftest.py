"""Collector test fixtures: an in-process Spotify stand-in and users connected to it.

The collector's work spans several transactions and, in the loop tests, concurrent
tasks, so these tests use committed sessions on the test database and delete the users
they created afterwards (every user table cascades).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.engine import create_sessionmaker
from playlog.db.models import User
from playlog.spotify.client import RetryPolicy, SpotifyClient
from playlog.spotify.stand_in import StandInAccount, StandInConfig
from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.spotify.stand_in.state import StandInState
from playlog.testing.exports import delete_users_and_their_catalog
from playlog.testing.spotify import Connect, sign_in_and_connect
from playlog_collector.settings import CollectorSettings

ACCOUNTS = ("listener-a", "listener-b", "listener-c")


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def stand_in_config() -> StandInConfig:
    return StandInConfig(
        accounts=tuple(
            StandInAccount(name, name.title(), seed=index) for index, name in enumerate(ACCOUNTS)
        ),
        # Long enough that every listener has more than a full 50-play window.
        history_hours=72,
        enable_control=True,
    )


@pytest_asyncio.fixture
async def stand_in(
    stand_in_config: StandInConfig,
) -> AsyncIterator[tuple[httpx.AsyncClient, StandInState]]:
    app = create_stand_in_app(stand_in_config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stand-in") as http:
        yield http, app.state.stand_in


@pytest.fixture
def stand_in_state(stand_in: tuple[httpx.AsyncClient, StandInState]) -> StandInState:
    return stand_in[1]


@pytest.fixture
def spotify(
    stand_in: tuple[httpx.AsyncClient, StandInState], stand_in_config: StandInConfig
) -> SpotifyClient:
    return SpotifyClient(
        http=stand_in[0],
        api_base_url="http://stand-in/v1",
        accounts_base_url="http://stand-in",
        client_id=stand_in_config.client_id,
        client_secret=stand_in_config.client_secret,
        retry=RetryPolicy(max_attempts=3, max_retry_after_seconds=2),
        sleep=no_sleep,
    )


@pytest_asyncio.fixture
async def committed(db_engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    sessionmaker = create_sessionmaker(db_engine)
    async with sessionmaker() as session:
        before = set(await session.scalars(select(User.id)))
    yield sessionmaker
    async with sessionmaker() as session:
        created = set(await session.scalars(select(User.id))) - before
    await delete_users_and_their_catalog(db_engine, list(created))


@pytest.fixture
def cipher(encryption_key: str) -> TokenCipher:
    return TokenCipher(encryption_key)


@pytest.fixture
def connect(
    stand_in: tuple[httpx.AsyncClient, StandInState],
    stand_in_config: StandInConfig,
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
) -> Connect:
    async def connect_one(account: str) -> uuid.UUID:
        return await sign_in_and_connect(stand_in[0], stand_in_config, account, committed, cipher)

    return connect_one


@pytest.fixture
def collector_settings(database_url: str, encryption_key: str) -> CollectorSettings:
    return CollectorSettings(
        database_url=database_url,
        token_encryption_key=encryption_key,
        collector_id=f"collector-test-{uuid.uuid4().hex[:8]}",
        collector_scan_seconds=0.05,
        collector_heartbeat_seconds=0.2,
    )
