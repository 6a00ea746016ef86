"""The collector writes a heartbeat in its own transactions and records its stop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest_asyncio
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.db.engine import create_sessionmaker
from playlog.db.models import WorkerHeartbeat
from playlog_collector.settings import CollectorSettings
from playlog_collector.worker import Collector


@pytest_asyncio.fixture
async def committed_sessions(
    db_engine: AsyncEngine,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], str]]:
    """Real commits (the worker runs concurrently with the test); the row is removed after."""
    worker_id = f"collector-test-{uuid.uuid4().hex[:8]}"
    sessionmaker = create_sessionmaker(db_engine)
    yield sessionmaker, worker_id
    async with sessionmaker.begin() as session:
        await session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))


async def _wait_for_row(
    sessionmaker: async_sessionmaker[AsyncSession],
    worker_id: str,
    condition: Callable[[WorkerHeartbeat], bool],
) -> WorkerHeartbeat:
    for _ in range(500):
        async with sessionmaker() as session:
            row = await session.get(WorkerHeartbeat, worker_id)
        if row is not None and condition(row):
            return row
        await asyncio.sleep(0.02)
    raise AssertionError("the heartbeat row never reached the expected state")


async def test_heartbeat_reports_liveness_activity_and_stop(
    database_url: str,
    encryption_key: str,
    committed_sessions: tuple[async_sessionmaker[AsyncSession], str],
) -> None:
    sessionmaker, worker_id = committed_sessions
    settings = CollectorSettings(
        database_url=database_url,
        token_encryption_key=encryption_key,
        collector_id=worker_id,
        collector_heartbeat_seconds=0.05,
    )
    collector = Collector(settings, sessionmaker)
    task = asyncio.create_task(collector.run())

    first = await _wait_for_row(sessionmaker, worker_id, lambda row: row.activity == "idle")
    assert first.service == "collector"
    assert first.stopped_at is None
    later = await _wait_for_row(
        sessionmaker, worker_id, lambda row: row.last_seen_at > first.last_seen_at
    )
    assert later.started_at == first.started_at

    collector.activity = "polling 3 users"
    await _wait_for_row(sessionmaker, worker_id, lambda row: row.activity == "polling 3 users")

    collector.stop()
    await asyncio.wait_for(task, timeout=10)
    stopped = await _wait_for_row(sessionmaker, worker_id, lambda row: True)
    assert stopped.stopped_at is not None
    assert stopped.activity == "stopped"
