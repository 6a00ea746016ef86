"""Admin views of one user: profile, Spotify connection, sync checkpoint; disconnect."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import SpotifyToken, SyncCheckpoint, User
from playlog.errors import BadGateway, NotFound, RateLimited, ServiceUnavailable
from playlog.spotify.client import SpotifyClient
from playlog.spotify.errors import SpotifyError, SpotifyRateLimited, SpotifyUnavailable
from playlog.spotify.tokens import TokenState, UserTokens, token_status
from playlog.web.admin_auth import require_admin
from playlog.web.db import DbSession

router = APIRouter(prefix="/admin/users", tags=["admin"], dependencies=[Depends(require_admin)])


class SpotifyConnection(BaseModel):
    state: TokenState
    authorized_at: datetime | None
    refresh_token_expires_at: datetime | None
    reason: str | None
    scope: str | None


class Checkpoint(BaseModel):
    status: str
    latest_played_at: datetime | None
    last_poll_completed_at: datetime | None
    next_run_at: datetime | None
    error: str | None


class UserDetail(BaseModel):
    id: uuid.UUID
    display_name: str | None
    email: str | None
    timezone: str
    spotify_user_id: str | None
    created_at: datetime
    spotify: SpotifyConnection
    checkpoint: Checkpoint | None


async def load_user(user_id: uuid.UUID, session: DbSession) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


LoadedUser = Annotated[User, Depends(load_user)]


async def _detail(session: AsyncSession, user: User) -> UserDetail:
    token = await session.get(SpotifyToken, user.id)
    checkpoint = await session.get(SyncCheckpoint, user.id)
    now = await session.scalar(select(func.now()))
    assert now is not None
    status = token_status(token, now)
    return UserDetail(
        id=user.id,
        display_name=user.display_name,
        email=user.email,
        timezone=user.timezone,
        spotify_user_id=user.spotify_user_id,
        created_at=user.created_at,
        spotify=SpotifyConnection(
            state=status.state,
            authorized_at=status.authorized_at,
            refresh_token_expires_at=status.refresh_token_expires_at,
            reason=status.reason,
            scope=token.scope if token else None,
        ),
        checkpoint=Checkpoint.model_validate(checkpoint, from_attributes=True)
        if checkpoint
        else None,
    )


@router.get("/{user_id}")
async def get_user(user: LoadedUser, session: DbSession) -> UserDetail:
    """A user's profile, Spotify connection status (ok / expires_soon / needs_reauth /
    not_connected, with the refresh-token expiry) and sync checkpoint."""
    return await _detail(session, user)


class ConnectionCheck(BaseModel):
    spotify_user_id: str
    display_name: str | None
    spotify: SpotifyConnection


@router.post(
    "/{user_id}/check-connection",
    response_model=ConnectionCheck,
    responses={409: {"description": "the user must reconnect Spotify (spotify_reauth_required)"}},
)
async def check_connection(
    user: LoadedUser, request: Request, session: DbSession
) -> ConnectionCheck:
    """Call Spotify as this user (refreshing the access token if needed) and report.

    409 when the user must reconnect (the refresh token is dead; the user is marked
    needs_reauth), 429 with Retry-After when Spotify throttles, 503 when it is down.
    """
    client: SpotifyClient | None = request.app.state.spotify
    if client is None:
        raise ServiceUnavailable("Spotify is not configured: set SPOTIFY_CLIENT_ID")
    tokens = UserTokens(request.app.state.sessionmaker, request.app.state.cipher, client, user.id)
    try:
        profile = await client.me(tokens)
    except SpotifyRateLimited as exc:
        raise RateLimited(
            str(exc), headers={"Retry-After": str(int(exc.retry_after_seconds) + 1)}
        ) from None
    except SpotifyUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    except SpotifyError as exc:
        raise BadGateway(f"Spotify refused the call: {exc}") from None
    detail = await _detail(session, user)
    return ConnectionCheck(
        spotify_user_id=profile.id, display_name=profile.display_name, spotify=detail.spotify
    )


@router.post("/{user_id}/disconnect")
async def disconnect(user: LoadedUser, session: DbSession) -> UserDetail:
    """Forget the user's Spotify tokens and stop polling; their history stays.

    Spotify offers no endpoint to revoke a token; the user can also remove the app from
    their Spotify account. Connecting again through /auth/login resumes polling.
    """
    await session.execute(delete(SpotifyToken).where(SpotifyToken.user_id == user.id))
    await session.execute(
        update(SyncCheckpoint)
        .where(SyncCheckpoint.user_id == user.id)
        .values(status="needs_reauth", error="disconnected by an admin", lease_owner=None)
    )
    return await _detail(session, user)
