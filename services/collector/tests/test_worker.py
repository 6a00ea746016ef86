"""The collector loop: heartbeat, initial sync then polling, sync-now, clean stop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import TypeVar

import httpx
import pytest_asyncio
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.engine import db_now
from playlog.db.models import JobRun, SyncCheckpoint, WorkerHeartbeat
from playlog.db.models.sync import SYNC_CHANNEL
from playlog.spotify.client import SpotifyClient
from playlog.spotify.stand_in.state import StandInState
from playlog.testing.factories import add_connected_user
from playlog.testing.spotify import (
    Connect,
    listen_until_new_plays,
    mock_spotify,
    served_plays,
    stored_plays,
)
from playlog_collector.settings import CollectorSettings
from playlog_collector.worker import Collector

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, tries: int = 400) -> T:
    """Poll ``probe`` until it returns something (a functional wait, not a speed check)."""
    for _ in range(tries):
        value = await probe()
        if value is not None:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest_asyncio.fixture
async def heartbeat_cleanup(
    committed: async_sessionmaker[AsyncSession], collector_settings: CollectorSettings
) -> AsyncIterator[None]:
    yield
    async with committed.begin() as session:
        await session.execute(
            delete(WorkerHeartbeat).where(
                WorkerHeartbeat.worker_id == collector_settings.collector_id
            )
        )


async def test_without_spotify_the_collector_only_beats_and_stops_cleanly(
    collector_settings: CollectorSettings,
    committed: async_sessionmaker[AsyncSession],
    heartbeat_cleanup: None,
) -> None:
    worker_id = collector_settings.collector_id
    assert worker_id is not None
    collector = Collector(collector_settings, committed)
    task = asyncio.create_task(collector.run())

    async def beating() -> WorkerHeartbeat | None:
        async with committed() as session:
            row = await session.get(WorkerHeartbeat, worker_id)
        return row if row is not None and row.activity.startswith("idle") else None

    first = await eventually(beating, "first heartbeat")
    assert first.activity == "idle: Spotify is not configured"
    assert first.stopped_at is None

    async def later_beat() -> WorkerHeartbeat | None:
        row = await beating()
        return row if row is not None and row.last_seen_at > first.last_seen_at else None

    assert (await eventually(later_beat, "second heartbeat")).started_at == first.started_at
    collector.stop()
    await asyncio.wait_for(task, timeout=10)
    async with committed() as session:
        stopped = await session.get(WorkerHeartbeat, worker_id)
    assert stopped is not None
    assert stopped.stopped_at is not None
    assert stopped.activity == "stopped"


async def test_loop_syncs_new_users_and_answers_sync_now_without_waiting_for_a_scan(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    stand_in_state: StandInState,
    spotify: SpotifyClient,
    collector_settings: CollectorSettings,
    heartbeat_cleanup: None,
) -> None:
    users = {account: await connect(account) for account in ("listener-a", "listener-b")}
    # A scan every 10 minutes: only the notification can start the sync-now run in time.
    settings = collector_settings.model_copy(
        update={"collector_scan_seconds": 600, "collector_interval_seconds": 3600}
    )
    collector = Collector(settings, committed, spotify=spotify, engine=db_engine)
    task = asyncio.create_task(collector.run())
    try:
        for account, user_id in users.items():
            await eventually(
                partial(_completed_initial_sync, committed, user_id),
                f"initial sync of {account}",
            )
            assert await stored_plays(committed, user_id) == served_plays(stand_in_state, account)

        user_id = users["listener-a"]
        cursor = await _latest(committed, user_id)
        new = listen_until_new_plays(stand_in_state, "listener-a", after=cursor)
        async with committed.begin() as session:
            await session.execute(
                update(SyncCheckpoint)
                .where(SyncCheckpoint.user_id == user_id)
                .values(next_run_at=func.now(), sync_requested_at=func.now())
            )
            await session.execute(select(func.pg_notify(SYNC_CHANNEL, str(user_id))))

        poll = await eventually(
            lambda: _finished_run(committed, user_id, "poll"), "the sync-now poll"
        )
        assert poll.status == "success"
        assert poll.stats["inserted"] == len(new)
        assert "pickup_latency_ms" in poll.stats  # claimed as the sync-now
        assert await stored_plays(committed, user_id) == served_plays(stand_in_state, "listener-a")
    finally:
        collector.stop()
        await asyncio.wait_for(task, timeout=10)


async def test_stop_abandons_a_hanging_run_and_hands_the_user_back(
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    collector_settings: CollectorSettings,
    heartbeat_cleanup: None,
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async with committed.begin() as session:
        user = await add_connected_user(session, cipher, "Stuck")
    async with mock_spotify(hang) as spotify:
        collector = Collector(collector_settings, committed, spotify=spotify)
        collector.shutdown_grace = 0.2
        task = asyncio.create_task(collector.run())
        running = await eventually(
            lambda: _run_with_status(committed, user.id, "running"), "a running job"
        )
        collector.stop()
        await asyncio.wait_for(task, timeout=10)

    async with committed() as session:
        job = await session.get(JobRun, running.id)
        checkpoint = await session.get(SyncCheckpoint, user.id)
        now = await db_now(session)
    assert job is not None
    assert job.status == "error"
    assert job.error is not None
    assert "abandoned" in job.error
    assert checkpoint is not None
    assert checkpoint.lease_owner is None
    assert checkpoint.next_run_at is not None
    assert checkpoint.next_run_at <= now  # any replica may take it at once
    assert checkpoint.consecutive_failures == 0


async def test_the_import_and_the_running_polls_share_one_grace_period(
    committed: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    cipher: TokenCipher,
    collector_settings: CollectorSettings,
    heartbeat_cleanup: None,
) -> None:
    """An import and a poll that each end only once the polls are being stopped: waited
    for one after the other, the import's wait would run out its whole grace first."""
    collector: Collector

    async def stopping() -> bool | None:
        return True if collector.activity == "stopping" else None

    async def polls_stopping() -> None:
        await eventually(stopping, "the polls being stopped")

    async def answer_when_stopping(request: httpx.Request) -> httpx.Response:
        await polls_stopping()
        return httpx.Response(200, json={"items": [], "limit": 50, "href": str(request.url)})

    async with committed.begin() as session:
        user = await add_connected_user(session, cipher, "Stopping")
    async with mock_spotify(answer_when_stopping) as spotify:
        collector = Collector(collector_settings, committed, spotify=spotify, engine=db_engine)
        # Longer than the test may take: both waits must end on their own.
        collector.shutdown_grace = 3600
        assert collector.imports is not None
        # Stands in for an import thread that hands its job back once the polls stop.
        collector.imports.task = importing = asyncio.create_task(polls_stopping())
        task = asyncio.create_task(collector.run())
        try:
            running = await eventually(
                lambda: _run_with_status(committed, user.id, "running"), "a running job"
            )
            collector.stop()
            await asyncio.wait_for(task, timeout=10)
        finally:
            importing.cancel()
    assert importing.done()
    assert not importing.cancelled()
    async with committed() as session:
        job = await session.get(JobRun, running.id)
    assert job is not None
    assert job.status == "success"


async def _completed_initial_sync(
    committed: async_sessionmaker[AsyncSession], user_id: uuid.UUID
) -> SyncCheckpoint | None:
    async with committed() as session:
        row = await session.get(SyncCheckpoint, user_id)
    if row is None or row.initial_sync_completed_at is None or row.lease_owner is not None:
        return None
    return row


async def _latest(committed: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> datetime:
    async with committed() as session:
        row = await session.get(SyncCheckpoint, user_id)
    assert row is not None
    assert row.latest_played_at is not None
    return row.latest_played_at


async def _finished_run(
    committed: async_sessionmaker[AsyncSession], user_id: uuid.UUID, job_type: str
) -> JobRun | None:
    async with committed() as session:
        return await session.scalar(
            select(JobRun).where(
                JobRun.user_id == user_id,
                JobRun.job_type == job_type,
                JobRun.finished_at.is_not(None),
            )
        )


async def _run_with_status(
    committed: async_sessionmaker[AsyncSession], user_id: uuid.UUID, status: str
) -> JobRun | None:
    async with committed() as session:
        return await session.scalar(
            select(JobRun).where(JobRun.user_id == user_id, JobRun.status == status)
        )
