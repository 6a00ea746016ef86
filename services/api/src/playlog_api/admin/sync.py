"""Controlling the collector for one user: pause, resume, sync now, redo the initial sync.

The collector works from ``sync_checkpoints``: it polls users whose ``next_run_at`` is due
and that are neither ``paused`` nor ``needs_reauth``, and runs an initial sync for users
whose ``initial_sync_completed_at`` is null. Requests wake it through ``NOTIFY`` on
``SYNC_CHANNEL``, delivered when the request's transaction commits.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from playlog.db.models import SyncCheckpoint
from playlog.db.models.sync import SYNC_CHANNEL
from playlog.errors import Conflict
from playlog.spotify.tokens import ReauthRequired, TokenStatus
from playlog.web.db import DbSession
from playlog_api.admin.schemas import NO_USER, Checkpoint, SyncState
from playlog_api.admin.users import LoadedUser, spotify_status

router = APIRouter(prefix="/users", responses=NO_USER)

_USABLE = ("ok", "expires_soon")
_CONFLICTS: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "the user must (re)connect Spotify (spotify_reauth_required), has "
        "never connected it, or is paused (conflict)"
    }
}


async def _write(
    session: AsyncSession,
    statement: ReturningInsert[SyncCheckpoint] | ReturningUpdate[SyncCheckpoint],
) -> SyncCheckpoint | None:
    """Run an upsert or update of a checkpoint and return the row it wrote, if any."""
    result = await session.scalars(statement.execution_options(populate_existing=True))
    return result.one_or_none()


def _state(user_id: uuid.UUID, status: TokenStatus, row: SyncCheckpoint | None) -> SyncState:
    checkpoint = Checkpoint.model_validate(row) if row is not None else None
    return SyncState(user_id=user_id, spotify=status.state, checkpoint=checkpoint)


async def _notify(session: AsyncSession, user_id: uuid.UUID) -> None:
    # Delivered at commit, which the request's session does before the response.
    await session.execute(select(func.pg_notify(SYNC_CHANNEL, str(user_id))))


@router.post("/{user_id}/pause")
async def pause(user: LoadedUser, session: DbSession) -> SyncState:
    """Stop the collector from working on this user until resumed.

    Creates the checkpoint when the user has none. Work already running finishes and
    leaves the user paused.
    """
    changes = {"status": "paused", "updated_at": func.now()}
    row = await _write(
        session,
        insert(SyncCheckpoint)
        .values(user_id=user.id, status="paused")
        .on_conflict_do_update(index_elements=[SyncCheckpoint.user_id], set_=changes)
        .returning(SyncCheckpoint),
    )
    _, status = await spotify_status(session, user.id)
    return _state(user.id, status, row)


@router.post("/{user_id}/resume")
async def resume(user: LoadedUser, session: DbSession) -> SyncState:
    """Undo a pause: the user is due at once, failures and error are cleared.

    If the user cannot be polled (Spotify not connected, or it must be reconnected) the
    status becomes `needs_reauth` instead of `idle`, with the reason as error. Resuming a
    user that is not paused changes nothing and returns the current state.
    """
    _, status = await spotify_status(session, user.id)
    usable = status.state in _USABLE
    row = await _write(
        session,
        update(SyncCheckpoint)
        .where(SyncCheckpoint.user_id == user.id, SyncCheckpoint.status == "paused")
        .values(
            status="idle" if usable else "needs_reauth",
            next_run_at=func.now(),
            # Counts as a request: a run still finishing the paused cycle must not push
            # the next one a whole interval away.
            sync_requested_at=func.now() if usable else None,
            consecutive_failures=0,
            error=None if usable else (status.reason or "Spotify is not connected"),
            updated_at=func.now(),
        )
        .returning(SyncCheckpoint),
    )
    if row is None:
        row = await session.get(SyncCheckpoint, user.id, populate_existing=True)
    elif usable:
        await _notify(session, user.id)
    return _state(user.id, status, row)


async def _request_sync(
    session: AsyncSession, user_id: uuid.UUID, *, restart_initial_sync: bool
) -> SyncState:
    """Make the user due now and wake the collectors; 409 when it could not sync."""
    _, status = await spotify_status(session, user_id)
    if status.state == "needs_reauth":
        raise ReauthRequired(f"Spotify must be reconnected first: {status.reason}")
    if status.state == "not_connected":
        raise Conflict("this user has not connected Spotify: connect through /auth/login first")
    now = func.now()
    changes: dict[str, Any] = {
        "next_run_at": now,
        "sync_requested_at": now,
        # The token is usable, so a stale needs_reauth must not keep the collector away.
        "status": case(
            (SyncCheckpoint.status == "needs_reauth", "idle"), else_=SyncCheckpoint.status
        ),
        "updated_at": now,
    }
    if restart_initial_sync:
        changes |= {
            "initial_sync_started_at": None,
            "initial_sync_completed_at": None,
            "initial_sync_cursor_ms": None,
            "initial_sync_earliest_played_at": None,
        }
    row = await _write(
        session,
        insert(SyncCheckpoint)
        .values(
            user_id=user_id, status="idle", next_run_at=func.now(), sync_requested_at=func.now()
        )
        .on_conflict_do_update(
            index_elements=[SyncCheckpoint.user_id],
            set_=changes,
            where=SyncCheckpoint.status != "paused",
        )
        .returning(SyncCheckpoint),
    )
    if row is None:
        raise Conflict("syncing is paused for this user: resume first")
    await _notify(session, user_id)
    return _state(user_id, status, row)


@router.post("/{user_id}/sync-now", status_code=202, responses=_CONFLICTS)
async def sync_now(user: LoadedUser, session: DbSession) -> SyncState:
    """Ask the collectors to poll this user now (202: it happens in the background).

    409 when Spotify is not connected or must be reconnected, or when the user is paused.
    """
    return await _request_sync(session, user.id, restart_initial_sync=False)


@router.post("/{user_id}/initial-sync", status_code=202, responses=_CONFLICTS)
async def initial_sync(user: LoadedUser, session: DbSession) -> SyncState:
    """Run the initial sync again: forget its progress and ask the collectors to start it
    now (202: it happens in the background). Plays already stored stay.

    409 when Spotify is not connected or must be reconnected, or when the user is paused.
    """
    return await _request_sync(session, user.id, restart_initial_sync=True)
