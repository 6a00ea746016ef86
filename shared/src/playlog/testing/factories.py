"""Rows for tests: users with a Spotify connection and the collector's bookkeeping.

Each helper adds and flushes; the test decides when to commit. Tokens are placeholders:
only their status and ``authorized_at`` matter to the code that reads them here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from playlog.crypto import TokenCipher
from playlog.db.models import (
    Base,
    CoverageGap,
    ImportJob,
    JobRun,
    LogRecord,
    Play,
    SpotifyToken,
    SyncCheckpoint,
    Track,
    User,
)
from playlog.spotify.models import TokenResponse
from playlog.spotify.tokens import store_grant

M = TypeVar("M", bound=Base)


async def _added(session: AsyncSession, row: M) -> M:
    session.add(row)
    await session.flush()
    return row


async def add_user(
    session: AsyncSession,
    name: str = "Ada",
    *,
    authorized_days_ago: float | None = 1.0,
    connection: str = "ok",
    checkpoint: str | None = "idle",
    created_at: datetime | None = None,
    **checkpoint_fields: Any,
) -> User:
    """A user; connected to Spotify (token status ``connection``) unless
    ``authorized_days_ago`` is None; with a checkpoint of status ``checkpoint`` (and
    ``checkpoint_fields``) unless it is None."""
    user = await _added(
        session,
        User(
            display_name=name,
            spotify_user_id=f"sp-{uuid.uuid4().hex[:12]}",
            **({"created_at": created_at} if created_at else {}),
        ),
    )
    if authorized_days_ago is not None:
        session.add(
            SpotifyToken(
                user_id=user.id,
                refresh_token_encrypted=uuid.uuid4().hex,
                authorized_at=datetime.now(UTC) - timedelta(days=authorized_days_ago),
                status=connection,
                status_reason="refresh token revoked" if connection == "needs_reauth" else None,
            )
        )
    if checkpoint is not None:
        session.add(SyncCheckpoint(user_id=user.id, status=checkpoint, **checkpoint_fields))
    await session.flush()
    return user


async def add_connected_user(session: AsyncSession, cipher: TokenCipher, name: str) -> User:
    """A user whose stored grant decrypts (for code that calls Spotify with it)."""
    user = await _added(session, User(display_name=name))
    grant = TokenResponse(
        access_token="access-token",  # noqa: S106 - a placeholder the stub API accepts
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
        expires_in=3600,
        refresh_token="refresh-token",  # noqa: S106 - a placeholder the code never sends
    )
    await store_grant(session, cipher, user.id, grant, datetime.now(UTC))
    await _added(session, SyncCheckpoint(user_id=user.id))
    return user


async def add_job_run(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    job_type: str = "poll",
    status: str = "success",
    started_at: datetime | None = None,
    error: str | None = None,
) -> JobRun:
    run = JobRun(user_id=user_id, job_type=job_type, status=status, error=error)
    if started_at is not None:
        run.started_at = started_at
    return await _added(session, run)


async def add_import_job(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    status: str = "success",
    storage_path: str | None = None,
    created_at: datetime | None = None,
    **fields: Any,
) -> ImportJob:
    """An import job; ``fields`` are further columns (progress, counts, timestamps)."""
    job = ImportJob(
        user_id=user_id,
        status=status,
        storage_path=storage_path,
        original_filename="my_spotify_data.zip",
        **{"file_size_bytes": 1234, **fields},
    )
    if created_at is not None:
        job.created_at = created_at
    return await _added(session, job)


async def add_gap(
    session: AsyncSession, user_id: uuid.UUID, gap_from: datetime, gap_to: datetime
) -> CoverageGap:
    return await _added(session, CoverageGap(user_id=user_id, gap_from=gap_from, gap_to=gap_to))


async def add_plays(session: AsyncSession, user_id: uuid.UUID, count: int) -> Track:
    """``count`` plays of one new track, a minute apart; returns the track."""
    track = await _added(
        session,
        Track(track_id=f"test-{uuid.uuid4().hex}", name="A Song", source="spotify_api"),
    )
    start = datetime(2024, 1, 1, tzinfo=UTC)
    session.add_all(
        Play(
            user_id=user_id,
            played_at=start + timedelta(minutes=minute),
            track_id=track.track_id,
            source="spotify_api",
        )
        for minute in range(count)
    )
    await session.flush()
    return track


async def add_log(
    session: AsyncSession,
    message: str,
    *,
    service: str = "api",
    level: str = "INFO",
    user_id: uuid.UUID | None = None,
    timestamp: datetime | None = None,
) -> LogRecord:
    record = LogRecord(
        service=service,
        level=level,
        message=message,
        logger="tests",
        context={"user_id": str(user_id)} if user_id else {},
    )
    if timestamp is not None:
        record.timestamp = timestamp
    return await _added(session, record)
