"""Admin views of users: the list, one user's detail, Spotify connection, disconnect, delete."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.engine import db_now
from playlog.db.models import (
    CoverageGap,
    ImportJob,
    JobRun,
    PlayTrack,
    SpotifyToken,
    SyncCheckpoint,
    User,
)
from playlog.spotify.tokens import TokenStatus, UserTokens, token_status
from playlog.users import MAX_NAME_LENGTH, find_user, set_timezone, validate_display_name
from playlog.web.db import DbSession
from playlog.web.pagination import DEFAULT_LIMIT, Keyset, Page, PageCursor, PageLimit
from playlog_api.admin.deletion import delete_user
from playlog_api.admin.schemas import (
    NO_USER,
    Checkpoint,
    ConnectionCheck,
    CoverageGapView,
    ImportJobSummary,
    JobRunView,
    SpotifyConnection,
    UserDetail,
    UserSummary,
)
from playlog_api.dependencies import Settings
from playlog_api.spotify_calls import SPOTIFY_FAILURES, configured, spotify_failures

router = APIRouter(prefix="/users")

RECENT_JOBS = 10
RECENT_IMPORTS = 10
RECENT_GAPS = 20

_USERS = Keyset(tuple[AwareDatetime, uuid.UUID], User.created_at, User.id)


async def load_user(user_id: uuid.UUID, session: DbSession) -> User:
    return await find_user(session, user_id)


LoadedUser = Annotated[User, Depends(load_user)]


async def spotify_status(
    session: AsyncSession, user_id: uuid.UUID, now: datetime | None = None
) -> tuple[SpotifyToken | None, TokenStatus]:
    """The user's stored token and its state at ``now`` (default: the database's clock)."""
    token = await session.get(SpotifyToken, user_id, populate_existing=True)
    return token, token_status(token, now or await db_now(session))


@router.get("")
async def list_users(
    session: DbSession, limit: PageLimit = DEFAULT_LIMIT, cursor: PageCursor = None
) -> Page[UserSummary]:
    """Every user, oldest first, with Spotify connection state and collector checkpoint.

    Keyset-paginated: pass `next_cursor` as `cursor` for the next page.
    """
    statement = (
        select(User, SpotifyToken, SyncCheckpoint, func.now())
        .outerjoin(SpotifyToken, SpotifyToken.user_id == User.id)
        .outerjoin(SyncCheckpoint, SyncCheckpoint.user_id == User.id)
    )
    result = await session.execute(_USERS.apply(statement, cursor, limit))
    rows, next_cursor = _USERS.page(result.all(), limit, lambda row: (row[0].created_at, row[0].id))
    items = [
        UserSummary(
            id=user.id,
            display_name=user.display_name,
            spotify_user_id=user.spotify_user_id,
            created_at=user.created_at,
            spotify=token_status(token, now).state,
            sync_status=checkpoint.status if checkpoint else None,
            latest_played_at=checkpoint.latest_played_at if checkpoint else None,
            last_poll_completed_at=checkpoint.last_poll_completed_at if checkpoint else None,
            next_run_at=checkpoint.next_run_at if checkpoint else None,
            error=checkpoint.error if checkpoint else None,
        )
        for user, token, checkpoint, now in rows
    ]
    return Page(items=items, next_cursor=next_cursor)


async def _connection(session: AsyncSession, user_id: uuid.UUID) -> SpotifyConnection:
    token, status = await spotify_status(session, user_id)
    return SpotifyConnection(
        state=status.state,
        authorized_at=status.authorized_at,
        refresh_token_expires_at=status.refresh_token_expires_at,
        reason=status.reason,
        scope=token.scope if token else None,
    )


async def _detail(session: AsyncSession, user: User) -> UserDetail:
    checkpoint = await session.get(SyncCheckpoint, user.id, populate_existing=True)
    # From the running totals: a count over plays would read every row of the user.
    plays_total = await session.scalar(
        select(func.sum(PlayTrack.rows)).where(PlayTrack.user_id == user.id)
    )
    jobs = await session.scalars(
        select(JobRun)
        .where(JobRun.user_id == user.id)
        .order_by(JobRun.started_at.desc(), JobRun.id.desc())
        .limit(RECENT_JOBS)
    )
    imports = await session.scalars(
        select(ImportJob)
        .where(ImportJob.user_id == user.id)
        .order_by(ImportJob.created_at.desc(), ImportJob.id.desc())
        .limit(RECENT_IMPORTS)
    )
    gaps = await session.scalars(
        select(CoverageGap)
        .where(CoverageGap.user_id == user.id)
        .order_by(CoverageGap.gap_to.desc(), CoverageGap.id.desc())
        .limit(RECENT_GAPS)
    )
    return UserDetail(
        id=user.id,
        display_name=user.display_name,
        email=user.email,
        timezone=user.timezone,
        spotify_user_id=user.spotify_user_id,
        created_at=user.created_at,
        spotify=await _connection(session, user.id),
        checkpoint=Checkpoint.model_validate(checkpoint) if checkpoint else None,
        plays_total=plays_total or 0,
        recent_jobs=[JobRunView.model_validate(row) for row in jobs],
        recent_imports=[ImportJobSummary.model_validate(row) for row in imports],
        gaps=[CoverageGapView.model_validate(row) for row in gaps],
    )


@router.get("/{user_id}", responses=NO_USER)
async def get_user(user: LoadedUser, session: DbSession) -> UserDetail:
    """A user's profile, Spotify connection status (ok / expires_soon / needs_reauth /
    not_connected, with the refresh-token expiry), sync checkpoint, number of stored
    plays, the 10 newest job runs and imports, and the 20 newest coverage gaps."""
    return await _detail(session, user)


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(
        default=None, description=f"1 to {MAX_NAME_LENGTH} characters, blanks trimmed."
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone for day and hour buckets."
    )


@router.patch("/{user_id}", responses=NO_USER)
async def change_user(user: LoadedUser, change: UserChange, session: DbSession) -> UserDetail:
    """Change a user's display name or time zone (IANA name, e.g. Europe/Berlin). The time
    zone decides the day and hour buckets of every analytics answer for this user."""
    if change.timezone is not None:
        set_timezone(user, change.timezone)
    if change.display_name is not None:
        user.display_name = validate_display_name(change.display_name)
    await session.flush()
    return await _detail(session, user)


@router.delete("/{user_id}", status_code=204, responses=NO_USER)
async def remove_user(user: LoadedUser, session: DbSession, settings: Settings) -> None:
    """Delete the user for good: their row and, by cascade, their plays, tokens, checkpoint,
    job runs, imports and gaps; their stored log records; and their uploaded files under
    UPLOAD_DIR. Shared catalogue rows (tracks, artists) stay. Cannot be undone."""
    await delete_user(session, user, settings.upload_dir)


@router.post(
    "/{user_id}/check-connection",
    response_model=ConnectionCheck,
    responses={
        **NO_USER,
        409: {"description": "the user must reconnect Spotify (spotify_reauth_required)"},
        **{status: {"description": cause} for status, cause in SPOTIFY_FAILURES.items()},
    },
)
async def check_connection(
    user: LoadedUser, request: Request, session: DbSession
) -> ConnectionCheck:
    """Call Spotify as this user (refreshing the access token if needed) and report.

    409 when the user must reconnect (the refresh token is dead; the user is marked
    needs_reauth), 429 with Retry-After when Spotify throttles, 503 when it is down.
    """
    client = configured(request.app.state.spotify)
    tokens = UserTokens(request.app.state.sessionmaker, request.app.state.cipher, client, user.id)
    with spotify_failures():
        profile = await client.me(tokens)
    return ConnectionCheck(
        spotify_user_id=profile.id,
        display_name=profile.display_name,
        spotify=await _connection(session, user.id),
    )


@router.post("/{user_id}/disconnect", responses=NO_USER)
async def disconnect(user: LoadedUser, session: DbSession) -> UserDetail:
    """Forget the user's Spotify tokens and stop polling; their history stays.

    Spotify offers no endpoint to revoke a token; the user can also remove the app from
    their Spotify account. Connecting again through /auth/login resumes polling.
    """
    await session.execute(delete(SpotifyToken).where(SpotifyToken.user_id == user.id))
    await session.execute(
        update(SyncCheckpoint)
        .where(SyncCheckpoint.user_id == user.id)
        .values(
            status="needs_reauth",
            error="disconnected by an admin",
            # A run in progress loses its lease and stops at its next write.
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return await _detail(session, user)
