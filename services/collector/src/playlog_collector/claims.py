"""Claiming users' work with ``FOR UPDATE SKIP LOCKED`` plus a lease, and giving it back.

A claim is one transaction: it picks due users no live lease covers, leases them to this
worker, closes job runs a crashed worker left ``running`` and opens a job run for each
claimed user. Any number of replicas can claim concurrently; ``SKIP LOCKED`` keeps them
from waiting on each other and the lease keeps them from doing the same user twice.
"""

from __future__ import annotations

import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, func, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from playlog.db.models import JobRun, SyncCheckpoint
from playlog.db.models.sync import NOT_SCHEDULED, due_for_collection

WorkKind = Literal["initial_sync", "poll"]


@dataclass(frozen=True)
class Claim:
    user_id: uuid.UUID
    kind: WorkKind
    # This claim's lease: the worker id plus a token of the claim.
    lease_owner: str
    job_run_id: uuid.UUID
    # The `after` cursor of polls; the paging cursor of an unfinished initial sync.
    latest_played_at: datetime | None
    initial_sync_cursor_ms: int | None
    consecutive_failures: int
    # When an admin asked for this run (sync-now), for the pick-up latency.
    requested_at: datetime | None
    claimed_at: datetime


class LeaseLost(Exception):
    """Another worker holds this user now (our lease expired); stop without writing."""


async def claim(
    session: AsyncSession,
    owner: str,
    kind: WorkKind,
    limit: int,
    lease: timedelta,
    *,
    initial_sync_enabled: bool = True,
) -> list[Claim]:
    """Lease up to ``limit`` due users for ``kind`` work and open their job runs.

    The lease is held under ``owner`` plus a token of this claim, so a run whose lease
    lapsed cannot renew or release a newer claim of the same user, even one made by the
    same process. Users with a pending sync-now request come first.
    """
    if limit <= 0:
        return []
    initial = kind == "initial_sync"
    lease_owner = f"{owner}/{secrets.token_hex(4)}"
    stage: ColumnElement[bool]
    if initial:
        stage = SyncCheckpoint.initial_sync_completed_at.is_(None)
    elif initial_sync_enabled:
        stage = SyncCheckpoint.initial_sync_completed_at.is_not(None)
    else:
        stage = true()
    due = (
        select(
            SyncCheckpoint.user_id,
            SyncCheckpoint.sync_requested_at.label("requested_at"),
        )
        .where(due_for_collection(), stage)
        .order_by(
            SyncCheckpoint.sync_requested_at.is_(None),
            SyncCheckpoint.next_run_at.asc().nulls_first(),
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    changes: dict[str, Any] = {
        "lease_owner": lease_owner,
        "lease_expires_at": func.now() + lease,
        "sync_requested_at": None,
        "status": kind if initial else "polling",
    }
    if initial:
        changes["initial_sync_started_at"] = func.coalesce(
            SyncCheckpoint.initial_sync_started_at, func.now()
        )
    else:
        changes["last_poll_started_at"] = func.now()
    claimed = (
        await session.execute(
            update(SyncCheckpoint)
            .where(SyncCheckpoint.user_id == due.c.user_id)
            .values(changes)
            .returning(
                SyncCheckpoint.user_id,
                SyncCheckpoint.latest_played_at,
                SyncCheckpoint.initial_sync_cursor_ms,
                SyncCheckpoint.consecutive_failures,
                due.c.requested_at,
                func.now(),
            )
        )
    ).all()
    if not claimed:
        return []
    user_ids = [row[0] for row in claimed]
    # Whoever held these users before us is gone (their lease expired): close its runs.
    await session.execute(
        update(JobRun)
        .where(
            JobRun.user_id.in_(user_ids),
            JobRun.status == "running",
            JobRun.job_type.in_(("poll", "initial_sync")),
        )
        .values(
            status="error",
            finished_at=func.now(),
            error="abandoned: the collector running it stopped (lease expired)",
        )
    )
    opened = await session.execute(
        insert(JobRun)
        .values([{"job_type": kind, "user_id": user_id} for user_id in user_ids])
        .returning(JobRun.user_id, JobRun.id)
    )
    job_ids = {user_id: job_id for user_id, job_id in opened}
    return [
        Claim(
            user_id=user_id,
            kind=kind,
            lease_owner=lease_owner,
            job_run_id=job_ids[user_id],
            latest_played_at=latest,
            initial_sync_cursor_ms=cursor_ms,
            consecutive_failures=failures,
            requested_at=requested,
            claimed_at=now,
        )
        for user_id, latest, cursor_ms, failures, requested, now in claimed
    ]


async def renew(session: AsyncSession, claim: Claim, lease: timedelta, **changes: Any) -> None:
    """Extend our lease (and apply ``changes`` to the checkpoint) inside a write transaction.

    Raises LeaseLost when the lease is no longer ours, so the caller's transaction rolls
    back whatever it wrote.
    """
    renewed = await session.execute(
        update(SyncCheckpoint)
        .where(
            SyncCheckpoint.user_id == claim.user_id,
            SyncCheckpoint.lease_owner == claim.lease_owner,
        )
        .values(lease_expires_at=func.now() + lease, **changes)
        .returning(SyncCheckpoint.user_id)
    )
    if renewed.first() is None:
        raise LeaseLost(f"lease on user {claim.user_id} is no longer held by {claim.lease_owner}")


def jittered(seconds: float, rng: random.Random, spread: float = 0.1) -> timedelta:
    """``seconds`` ± ``spread``, so users connected together do not stay in lock-step."""
    return timedelta(seconds=seconds * rng.uniform(1 - spread, 1 + spread))


@dataclass(frozen=True)
class Outcome:
    """How a run ended, and what the checkpoint should say afterwards."""

    job_status: Literal["success", "partial", "error"]
    stats: dict[str, Any]
    error: str | None
    # None: leave next_run_at as it is (nothing scheduled, e.g. needs_reauth).
    next_run_in: timedelta | None
    checkpoint_status: str
    failed: bool = False


async def release(session: AsyncSession, claim: Claim, outcome: Outcome) -> None:
    """Finish the job run and hand the user back, in one transaction of their own.

    A pause or a needs_reauth mark set while the work ran is kept.
    """
    await session.execute(
        update(JobRun)
        .where(JobRun.id == claim.job_run_id)
        .values(
            status=outcome.job_status,
            finished_at=func.now(),
            stats=outcome.stats,
            error=outcome.error,
        )
    )
    changes: dict[str, Any] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "error": outcome.error if outcome.job_status != "success" else None,
        "status": case(
            (SyncCheckpoint.status.in_(NOT_SCHEDULED), SyncCheckpoint.status),
            else_=outcome.checkpoint_status,
        ),
        "consecutive_failures": SyncCheckpoint.consecutive_failures + 1 if outcome.failed else 0,
    }
    if outcome.next_run_in is not None:
        # A sync-now that arrived during the run is honoured, not overwritten.
        changes["next_run_at"] = case(
            (SyncCheckpoint.sync_requested_at.is_not(None), func.now()),
            else_=func.now() + outcome.next_run_in,
        )
    if claim.kind == "poll" and outcome.job_status != "error":
        changes["last_poll_completed_at"] = func.now()
    await session.execute(
        update(SyncCheckpoint)
        .where(
            SyncCheckpoint.user_id == claim.user_id,
            SyncCheckpoint.lease_owner == claim.lease_owner,
        )
        .values(changes)
    )
