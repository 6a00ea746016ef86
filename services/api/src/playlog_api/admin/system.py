"""Schema version and collector processes: is the system itself healthy?"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from playlog import __version__
from playlog.db.engine import db_now
from playlog.db.heartbeat import is_alive
from playlog.db.migrate import current_revision, head_revision
from playlog.db.models import WorkerHeartbeat
from playlog.web.db import DbSession
from playlog_api.admin.schemas import SystemStatus, WorkerStatus

router = APIRouter()


@router.get("/system")
async def get_system_status(session: DbSession) -> SystemStatus:
    """Schema version and the liveness of every collector process that has reported in."""
    now = await db_now(session)
    rows = await session.scalars(
        select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc())
    )
    columns = [column.key for column in WorkerHeartbeat.__table__.columns]
    workers = [
        WorkerStatus(
            **{key: getattr(row, key) for key in columns},
            alive=is_alive(row, now),
            seconds_since_seen=(now - row.last_seen_at).total_seconds(),
        )
        for row in rows
    ]
    return SystemStatus(
        version=__version__,
        migration_current=await current_revision(await session.connection()),
        migration_head=head_revision(),
        workers=workers,
    )
