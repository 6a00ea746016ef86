"""Stored Spotify tokens: saving a grant, status, and refreshing under a row lock.

Both the api and the collector use :class:`UserTokens`. A refresh takes ``SELECT … FOR
UPDATE`` on the user's token row, so two processes never refresh at once; whoever waited
for the lock finds the fresh token and uses it instead of refreshing again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.models import SpotifyToken, SyncCheckpoint
from playlog.errors import AppError
from playlog.spotify.client import SpotifyClient
from playlog.spotify.errors import SpotifyInvalidGrant, SpotifyUnauthorized
from playlog.spotify.models import TokenResponse

# Spotify refresh tokens die six months after the user authorised; refreshing does not
# extend that.
REFRESH_TOKEN_LIFETIME = timedelta(days=182)
WARN_BEFORE_EXPIRY = timedelta(days=14)
# Refresh a little before the access token's stated expiry.
ACCESS_TOKEN_MARGIN = timedelta(seconds=60)

TokenState = Literal["not_connected", "ok", "expires_soon", "needs_reauth"]


class ReauthRequired(AppError):
    """The user must connect Spotify again; nothing is retried for them until then."""

    status_code = 409
    code = "spotify_reauth_required"


@dataclass(frozen=True)
class TokenStatus:
    state: TokenState
    authorized_at: datetime | None
    refresh_token_expires_at: datetime | None
    reason: str | None


def token_status(row: SpotifyToken | None, now: datetime) -> TokenStatus:
    if row is None:
        return TokenStatus("not_connected", None, None, None)
    expires = row.authorized_at + REFRESH_TOKEN_LIFETIME
    if row.status == "needs_reauth" or expires <= now:
        reason = row.status_reason or "refresh token expired six months after authorisation"
        return TokenStatus("needs_reauth", row.authorized_at, expires, reason)
    state: TokenState = "expires_soon" if expires - now <= WARN_BEFORE_EXPIRY else "ok"
    return TokenStatus(state, row.authorized_at, expires, None)


async def store_grant(
    session: AsyncSession,
    cipher: TokenCipher,
    user_id: uuid.UUID,
    grant: TokenResponse,
    authorized_at: datetime,
) -> None:
    """Save a fresh authorisation (code exchange): both tokens encrypted, status ok."""
    if grant.refresh_token is None:
        raise ValueError("an authorisation grant must carry a refresh token")
    values = {
        "refresh_token_encrypted": cipher.encrypt(grant.refresh_token),
        "access_token_encrypted": cipher.encrypt(grant.access_token),
        "expires_at": authorized_at + timedelta(seconds=grant.expires_in),
        "scope": grant.scope,
        "authorized_at": authorized_at,
        "status": "ok",
        "status_reason": None,
        "refreshed_at": None,
    }
    statement = insert(SpotifyToken).values(user_id=user_id, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[SpotifyToken.user_id], set_=values)
    )


class UserTokens:
    """A :class:`~playlog.spotify.client.TokenSource` for one user, backed by the database."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: TokenCipher,
        client: SpotifyClient,
        user_id: uuid.UUID,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._client = client
        self.user_id = user_id

    async def access_token(self) -> str:
        async with self._sessionmaker() as session:
            row = await session.get(SpotifyToken, self.user_id)
            usable = self._usable_access_token(row, rejected=None)
        return usable if usable is not None else await self._refresh(rejected=None)

    async def refreshed_access_token(self, rejected: str) -> str:
        return await self._refresh(rejected)

    async def _refresh(self, rejected: str | None) -> str:
        failure: ReauthRequired | None = None
        async with self._sessionmaker.begin() as session:
            row = await session.scalar(
                select(SpotifyToken).where(SpotifyToken.user_id == self.user_id).with_for_update()
            )
            if row is None:
                raise ReauthRequired("this user has not connected Spotify")
            if row.status == "needs_reauth":
                raise ReauthRequired(f"Spotify must be reconnected: {row.status_reason}")
            # Another process may have refreshed while we waited for the lock.
            usable = self._usable_access_token(row, rejected)
            if usable is not None:
                return usable
            try:
                grant = await self._client.refresh(
                    self._cipher.decrypt(row.refresh_token_encrypted)
                )
            except SpotifyInvalidGrant as exc:
                await _mark_needs_reauth(session, row, str(exc))
                failure = ReauthRequired(f"Spotify must be reconnected: {exc}")
            else:
                now = datetime.now(UTC)
                row.access_token_encrypted = self._cipher.encrypt(grant.access_token)
                row.expires_at = now + timedelta(seconds=grant.expires_in)
                row.refreshed_at = now
                if grant.refresh_token is not None:
                    # Spotify rotated it: the old one may stop working at any time.
                    row.refresh_token_encrypted = self._cipher.encrypt(grant.refresh_token)
                if grant.scope:
                    row.scope = grant.scope
                return grant.access_token
        # Raised after the block so the needs_reauth mark is committed, not rolled back.
        assert failure is not None
        raise failure

    def _usable_access_token(self, row: SpotifyToken | None, rejected: str | None) -> str | None:
        if row is None or row.status != "ok" or row.access_token_encrypted is None:
            return None
        if row.expires_at is None or row.expires_at <= datetime.now(UTC) + ACCESS_TOKEN_MARGIN:
            return None
        token = self._cipher.decrypt(row.access_token_encrypted)
        return None if token == rejected else token


async def _mark_needs_reauth(session: AsyncSession, row: SpotifyToken, reason: str) -> None:
    row.status = "needs_reauth"
    row.status_reason = reason
    row.access_token_encrypted = None
    await session.execute(
        update(SyncCheckpoint)
        .where(SyncCheckpoint.user_id == row.user_id)
        .values(status="needs_reauth", error=reason)
    )


class GrantToken:
    """The access token of a grant just received (before it is stored): no refresh."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def access_token(self) -> str:
        return self._token

    async def refreshed_access_token(self, rejected: str) -> str:
        raise SpotifyUnauthorized("Spotify rejected a token it had just issued", status=401)
