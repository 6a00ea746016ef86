"""Stored tokens: encrypted at rest, refreshed once under a row lock, needs_reauth on death."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.engine import create_sessionmaker
from playlog.db.models import SpotifyToken, SyncCheckpoint, User
from playlog.spotify.client import SpotifyClient
from playlog.spotify.stand_in import StandInConfig
from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.spotify.tokens import (
    REFRESH_TOKEN_LIFETIME,
    ReauthRequired,
    UserTokens,
    store_grant,
    token_status,
)
from playlog.testing.spotify import REDIRECT_URI, authorization_code

CONFIG = StandInConfig(enable_control=True)


@dataclass
class Setup:
    user_id: uuid.UUID
    sessionmaker: async_sessionmaker[AsyncSession]
    cipher: TokenCipher
    client: SpotifyClient
    control: httpx.AsyncClient
    token_requests: list[str]

    def tokens(self) -> UserTokens:
        return UserTokens(self.sessionmaker, self.cipher, self.client, self.user_id)


@pytest_asyncio.fixture
async def setup(db_engine: AsyncEngine) -> AsyncIterator[Setup]:
    """A connected user with committed rows (several sessions must see them)."""
    stand_in = httpx.ASGITransport(app=create_stand_in_app(StandInConfig(enable_control=True)))
    token_requests: list[str] = []

    async def counting(request: httpx.Request) -> None:
        if request.url.path == "/api/token":
            token_requests.append(request.url.path)

    http = httpx.AsyncClient(transport=stand_in, event_hooks={"request": [counting]})
    client = SpotifyClient(http, "http://spotify/v1", "http://spotify", CONFIG.client_id)
    cipher = TokenCipher(Fernet.generate_key().decode())
    sessionmaker = create_sessionmaker(db_engine)
    async with httpx.AsyncClient(transport=stand_in, base_url="http://spotify") as control:
        code, verifier = await authorization_code(control, CONFIG)
        grant = await client.exchange_code(code, REDIRECT_URI, verifier)
        async with sessionmaker.begin() as session:
            user = User(display_name="Token Test")
            session.add(user)
            await session.flush()
            session.add(SyncCheckpoint(user_id=user.id, status="polling"))
            await store_grant(session, cipher, user.id, grant, datetime.now(UTC))
        token_requests.clear()
        yield Setup(user.id, sessionmaker, cipher, client, control, token_requests)
        async with sessionmaker.begin() as session:
            await session.execute(delete(User).where(User.id == user.id))
    await http.aclose()


async def test_tokens_are_stored_encrypted(setup: Setup) -> None:
    access = await setup.tokens().access_token()
    async with setup.sessionmaker() as session:
        raw = (
            await session.execute(
                text(
                    "SELECT refresh_token_encrypted, access_token_encrypted FROM spotify_tokens"
                    " WHERE user_id = :id"
                ),
                {"id": setup.user_id},
            )
        ).one()
    assert access not in raw[0] + raw[1]
    assert setup.cipher.decrypt(raw[1]) == access
    assert setup.token_requests == []  # still valid: no refresh needed


async def test_two_processes_refresh_only_once(setup: Setup) -> None:
    first, second = setup.tokens(), setup.tokens()
    stale = await first.access_token()
    await setup.control.post("/_control/expire-access-tokens")
    fresh = await asyncio.gather(
        first.refreshed_access_token(stale), second.refreshed_access_token(stale)
    )
    assert fresh[0] == fresh[1] != stale
    assert len(setup.token_requests) == 1
    me = await setup.client.me(setup.tokens())
    assert me.id == "demo-listener"


async def test_rotated_refresh_token_is_stored(setup: Setup) -> None:
    async with setup.sessionmaker() as session:
        before = await session.scalar(
            select(SpotifyToken.refresh_token_encrypted).where(
                SpotifyToken.user_id == setup.user_id
            )
        )
    tokens = setup.tokens()
    await tokens.refreshed_access_token(await tokens.access_token())
    async with setup.sessionmaker() as session:
        row = await session.get(SpotifyToken, setup.user_id)
    assert row is not None
    assert before is not None
    assert setup.cipher.decrypt(row.refresh_token_encrypted) != setup.cipher.decrypt(before)
    assert row.refreshed_at is not None
    # The rotated token works for the next refresh; the old one would be refused.
    await tokens.refreshed_access_token(await tokens.access_token())
    assert len(setup.token_requests) == 2


async def test_revoked_token_marks_needs_reauth_and_stops_calling(setup: Setup) -> None:
    tokens = setup.tokens()
    stale = await tokens.access_token()
    await setup.control.post("/_control/revoke", json={"account": "demo-listener"})
    # What the client does after Spotify answers 401 to the stale token.
    with pytest.raises(ReauthRequired):
        await tokens.refreshed_access_token(stale)
    async with setup.sessionmaker() as session:
        row = await session.get(SpotifyToken, setup.user_id)
        checkpoint = await session.get(SyncCheckpoint, setup.user_id)
    assert row is not None
    assert row.status == "needs_reauth"
    assert row.status_reason is not None
    assert "refresh token rejected" in row.status_reason
    assert checkpoint is not None
    assert checkpoint.status == "needs_reauth"
    calls = len(setup.token_requests)
    with pytest.raises(ReauthRequired):
        await tokens.access_token()
    assert len(setup.token_requests) == calls  # nothing else is tried for this user
    assert token_status(row, datetime.now(UTC)).state == "needs_reauth"


def test_status_warns_fourteen_days_ahead() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    row = SpotifyToken(status="ok", authorized_at=now - REFRESH_TOKEN_LIFETIME + timedelta(days=20))
    assert token_status(row, now).state == "ok"
    row.authorized_at = now - REFRESH_TOKEN_LIFETIME + timedelta(days=13)
    status = token_status(row, now)
    assert status.state == "expires_soon"
    assert status.refresh_token_expires_at == now + timedelta(days=13)
    row.authorized_at = now - REFRESH_TOKEN_LIFETIME - timedelta(seconds=1)
    assert token_status(row, now).state == "needs_reauth"
    assert token_status(None, now).state == "not_connected"
