"""The collector at a glance: checkpoints, due and active work, imports, errors, workers."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.engine import db_now
from playlog.db.heartbeat import is_alive
from playlog.db.models import ImportJob, JobRun, SyncCheckpoint, User, WorkerHeartbeat
from playlog.db.models.imports import IMPORT_STATUSES
from playlog.db.models.sync import CHECKPOINT_STATUSES, due_for_collection
from playlog.web.db import DbSession
from playlog_api.admin.schemas import ActiveWork, JobRunView, SyncStatus

router = APIRouter()

RECENT_ERRORS = 20


def _all_counted(statuses: Iterable[str], rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    counts = dict.fromkeys(statuses, 0)
    counts.update({status: count for status, count in rows})
    return counts


async def _count(session: AsyncSession, *conditions: ColumnElement[bool]) -> int:
    return await session.scalar(select(func.count()).where(*conditions)) or 0


@router.get("/sync-status")
async def get_sync_status(session: DbSession) -> SyncStatus:
    """Checkpoints by status, how many users are due, which users a collector works on
    right now (live lease), running job runs, imports by status, the 20 newest failed job
    runs and the number of live collector processes."""
    now = await db_now(session)
    checkpoints = await session.execute(
        select(SyncCheckpoint.status, func.count()).group_by(SyncCheckpoint.status)
    )
    imports = await session.execute(
        select(ImportJob.status, func.count()).group_by(ImportJob.status)
    )
    due_now = await _count(session, due_for_collection())
    active = await session.execute(
        select(
            SyncCheckpoint.user_id,
            User.display_name,
            SyncCheckpoint.status,
            SyncCheckpoint.lease_owner,
            SyncCheckpoint.lease_expires_at,
        )
        .join(User, User.id == SyncCheckpoint.user_id)
        .where(SyncCheckpoint.lease_owner.is_not(None), SyncCheckpoint.lease_expires_at > now)
        .order_by(SyncCheckpoint.lease_expires_at, SyncCheckpoint.user_id)
    )
    errors = await session.scalars(
        select(JobRun)
        .where(JobRun.status == "error")
        .order_by(JobRun.started_at.desc(), JobRun.id.desc())
        .limit(RECENT_ERRORS)
    )
    workers = await session.scalars(select(WorkerHeartbeat))
    return SyncStatus(
        checkpoints=_all_counted(CHECKPOINT_STATUSES, checkpoints.all()),
        due_now=due_now,
        active=[ActiveWork.model_validate(row, from_attributes=True) for row in active],
        running_jobs=await _count(session, JobRun.status == "running"),
        imports=_all_counted(IMPORT_STATUSES, imports.all()),
        recent_errors=[JobRunView.model_validate(row) for row in errors],
        workers_alive=sum(is_alive(worker, now) for worker in workers),
    )
