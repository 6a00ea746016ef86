"""Claims and leases: replicas never share a user, crashed work is picked up, pauses hold."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db.engine import db_now
from playlog.db.models import JobRun, SyncCheckpoint
from playlog.testing.spotify import Connect
from playlog_collector import claims
from playlog_collector.claims import Outcome

LEASE = timedelta(seconds=60)


async def set_checkpoint(
    committed: async_sessionmaker[AsyncSession], user_id: uuid.UUID, **values: object
) -> None:
    async with committed.begin() as session:
        await session.execute(
            update(SyncCheckpoint).where(SyncCheckpoint.user_id == user_id).values(**values)
        )


async def claim_as(
    committed: async_sessionmaker[AsyncSession], owner: str, limit: int = 10
) -> list[claims.Claim]:
    async with committed.begin() as session:
        return await claims.claim(session, owner, "initial_sync", limit, LEASE)


async def test_concurrent_replicas_split_users_without_overlap(
    connect: Connect, committed: async_sessionmaker[AsyncSession]
) -> None:
    users = {await connect(account) for account in ("listener-a", "listener-b", "listener-c")}
    results = await asyncio.gather(
        *(claim_as(committed, f"replica-{n}", limit=2) for n in range(4))
    )
    claimed = [claim.user_id for result in results for claim in result]
    assert sorted(map(str, claimed)) == sorted(map(str, users))
    # Everyone is leased now: a fifth replica finds nothing.
    assert await claim_as(committed, "replica-5") == []


async def test_an_expired_lease_is_taken_over_and_the_orphaned_run_closed(
    connect: Connect, committed: async_sessionmaker[AsyncSession]
) -> None:
    user_id = await connect("listener-a")
    (crashed,) = await claim_as(committed, "crashed-replica")
    assert await claim_as(committed, "healthy-replica") == []

    await set_checkpoint(committed, user_id, lease_expires_at=datetime.now(UTC) - timedelta(1))
    (taken,) = await claim_as(committed, "healthy-replica")
    assert taken.user_id == user_id
    async with committed() as session:
        orphan = await session.get(JobRun, crashed.job_run_id)
        checkpoint = await session.get(SyncCheckpoint, user_id)
    assert orphan is not None
    assert orphan.status == "error"
    assert orphan.error is not None
    assert "lease expired" in orphan.error
    assert checkpoint is not None
    assert checkpoint.lease_owner == taken.lease_owner
    assert taken.lease_owner.startswith("healthy-replica/")

    # The crashed replica cannot write once the lease is gone.
    async with committed.begin() as session:
        with pytest.raises(claims.LeaseLost):
            await claims.renew(session, crashed, LEASE)


async def test_pause_during_a_run_survives_its_release(
    connect: Connect, committed: async_sessionmaker[AsyncSession]
) -> None:
    user_id = await connect("listener-b")
    (claim,) = await claim_as(committed, "replica")
    await set_checkpoint(committed, user_id, status="paused")
    async with committed.begin() as session:
        await claims.release(
            session,
            claim,
            Outcome("success", {"inserted": 1}, None, timedelta(seconds=0), "idle"),
        )
    async with committed() as session:
        checkpoint = await session.get(SyncCheckpoint, user_id)
        job = await session.get(JobRun, claim.job_run_id)
    assert checkpoint is not None
    assert checkpoint.status == "paused"
    assert checkpoint.lease_owner is None
    assert job is not None
    assert job.status == "success"
    assert job.stats == {"inserted": 1}
    assert await claim_as(committed, "replica") == []

    await set_checkpoint(committed, user_id, status="idle")
    assert [c.user_id for c in await claim_as(committed, "replica")] == [user_id]


async def test_work_is_claimed_only_when_due_and_sync_now_is_reported(
    connect: Connect, committed: async_sessionmaker[AsyncSession]
) -> None:
    user_id = await connect("listener-c")
    later = datetime.now(UTC) + timedelta(hours=1)
    await set_checkpoint(committed, user_id, next_run_at=later)
    assert await claim_as(committed, "replica") == []

    async with committed() as session:
        now = await db_now(session)
    await set_checkpoint(committed, user_id, next_run_at=now, sync_requested_at=now)
    (claim,) = await claim_as(committed, "replica")
    assert claim.requested_at == now
    async with committed() as session:
        checkpoint = await session.get(SyncCheckpoint, user_id)
    assert checkpoint is not None
    assert checkpoint.sync_requested_at is None
    assert checkpoint.status == "initial_sync"


async def test_a_sync_now_arriving_during_a_run_is_not_lost(
    connect: Connect, committed: async_sessionmaker[AsyncSession]
) -> None:
    user_id = await connect("listener-a")
    (claim,) = await claim_as(committed, "replica")
    await set_checkpoint(committed, user_id, sync_requested_at=datetime.now(UTC))
    async with committed.begin() as session:
        await claims.release(
            session, claim, Outcome("success", {}, None, timedelta(hours=1), "idle")
        )
        now = await db_now(session)
    async with committed() as session:
        checkpoint = await session.get(SyncCheckpoint, user_id)
    assert checkpoint is not None
    assert checkpoint.next_run_at is not None
    assert checkpoint.next_run_at <= now
