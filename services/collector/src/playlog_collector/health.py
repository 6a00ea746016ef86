"""Container health probe: is a collector on this host alive according to the database?"""

from __future__ import annotations

import socket

from sqlalchemy import func, select

from playlog.db.engine import create_engine
from playlog.db.models import WorkerHeartbeat
from playlog_collector.settings import CollectorSettings


async def check_health(settings: CollectorSettings, max_age_seconds: float) -> tuple[bool, str]:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            query = select(
                func.extract("epoch", func.now() - func.max(WorkerHeartbeat.last_seen_at))
            ).where(WorkerHeartbeat.stopped_at.is_(None))
            if settings.collector_id:
                query = query.where(WorkerHeartbeat.worker_id == settings.collector_id)
            else:
                query = query.where(WorkerHeartbeat.hostname == socket.gethostname())
            age = await connection.scalar(query)
    except Exception as exc:
        return False, f"unhealthy: database unreachable ({type(exc).__name__})"
    finally:
        await engine.dispose()
    if age is None:
        return False, "unhealthy: no running collector has reported from this host"
    if float(age) > max_age_seconds:
        return False, f"unhealthy: last heartbeat {float(age):.0f}s ago"
    return True, f"healthy: last heartbeat {float(age):.1f}s ago"
