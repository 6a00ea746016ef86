from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from playlog import __version__
from playlog.db.heartbeat import is_alive
from playlog.db.migrate import current_revision, head_revision
from playlog.db.models import WorkerHeartbeat
from playlog_api.admin.schemas import SystemStatus, WorkerStatus


async def system_status(session: AsyncSession) -> SystemStatus:
    now = await session.scalar(select(func.now()))
    assert now is not None
    rows = await session.scalars(
        select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc()).limit(100)
    )
    workers = [
        WorkerStatus(
            worker_id=row.worker_id,
            service=row.service,
            hostname=row.hostname,
            pid=row.pid,
            version=row.version,
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
            stopped_at=row.stopped_at,
            activity=row.activity,
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
