"""Worker heartbeats: a collector process upserts its row every few seconds."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from playlog import __version__
from playlog.db.models import WorkerHeartbeat

# A worker is alive while its last heartbeat is younger than this.
STALE_AFTER = timedelta(seconds=60)


def default_worker_id(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


def is_alive(row: WorkerHeartbeat, now: datetime) -> bool:
    return row.stopped_at is None and now - row.last_seen_at < STALE_AFTER


async def beat(
    session: AsyncSession, worker_id: str, service: str, activity: str, *, starting: bool = False
) -> None:
    """Record that the worker is alive and what it is doing.

    ``starting`` marks a (re)start: it resets ``started_at`` of a reused worker id.
    """
    statement = insert(WorkerHeartbeat).values(
        worker_id=worker_id,
        service=service,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        version=__version__,
        started_at=func.now(),
        last_seen_at=func.now(),
        activity=activity,
    )
    changes: dict[str, Any] = {"last_seen_at": func.now(), "activity": activity, "stopped_at": None}
    if starting:
        changes |= {"started_at": func.now(), "pid": os.getpid(), "version": __version__}
    statement = statement.on_conflict_do_update(
        index_elements=[WorkerHeartbeat.worker_id], set_=changes
    )
    await session.execute(statement)


async def prune(session: AsyncSession, older_than: timedelta = timedelta(days=7)) -> None:
    """Forget workers not seen for a long time (each restart gets a new worker id)."""
    await session.execute(
        delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at < func.now() - older_than)
    )


async def mark_stopped(session: AsyncSession, worker_id: str) -> None:
    await session.execute(
        update(WorkerHeartbeat)
        .where(WorkerHeartbeat.worker_id == worker_id)
        .values(stopped_at=func.now(), activity="stopped")
    )
