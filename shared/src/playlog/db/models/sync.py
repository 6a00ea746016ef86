"""Collector bookkeeping: per-user checkpoints, job runs, gaps, worker heartbeats."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    and_,
    exists,
    func,
    or_,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import Base, created_at_column, one_of, updated_at_column
from playlog.db.models.users import SpotifyToken

CHECKPOINT_STATUSES = (
    "idle",
    "importing",
    "initial_sync",
    "polling",
    "error",
    "paused",
    "needs_reauth",
)
# What the collector records a run of; an export import is an import_jobs row.
JOB_TYPES = ("initial_sync", "poll")
JOB_STATUSES = ("running", "success", "partial", "error")
# Statuses the collector never picks up on its own: an admin paused the user, or
# Spotify must be reconnected.
NOT_SCHEDULED = ("paused", "needs_reauth")
# NOTIFY channel (payload: a user id) that wakes collectors for a sync-now request.
SYNC_CHANNEL = "playlog_sync"


class SyncCheckpoint(Base):
    __tablename__ = "sync_checkpoints"
    __table_args__ = (one_of("status", CHECKPOINT_STATUSES), Index(None, "next_run_at"))

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(Text, server_default="idle")
    initial_sync_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    initial_sync_completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    initial_sync_earliest_played_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True)
    )
    # Paging cursor of an unfinished initial sync, so a restart resumes.
    initial_sync_cursor_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_poll_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_poll_completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The `after` cursor: newest played_at stored from the API.
    latest_played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (
        one_of("job_type", JOB_TYPES),
        one_of("status", JOB_STATUSES),
        Index("ix_job_runs_user_id_started_at", "user_id", text("started_at DESC")),
        Index(None, "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()")
    )
    job_type: Mapped[str] = mapped_column(Text)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="running")
    stats: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    error: Mapped[str | None] = mapped_column(Text)


class CoverageGap(Base):
    """A period the API window could not reach (downtime longer than ~50 plays)."""

    __tablename__ = "coverage_gaps"
    __table_args__ = (
        UniqueConstraint("user_id", "gap_from", "gap_to"),
        CheckConstraint("gap_from <= gap_to", name="ordered"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    gap_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    gap_to: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detected_at: Mapped[datetime] = created_at_column()


class WorkerHeartbeat(Base):
    """Liveness of collector processes: each writes its row every few seconds."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(Text, primary_key=True)
    service: Mapped[str] = mapped_column(Text)
    hostname: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    activity: Mapped[str] = mapped_column(Text, server_default="starting")


def due_for_collection() -> ColumnElement[bool]:
    """Checkpoints a collector may claim now: scheduled, due, with a usable Spotify token
    and under no live lease. The collector's claim and the admin's "due now" count share
    this one definition."""
    return and_(
        SyncCheckpoint.status.not_in(NOT_SCHEDULED),
        or_(SyncCheckpoint.next_run_at.is_(None), SyncCheckpoint.next_run_at <= func.now()),
        or_(
            SyncCheckpoint.lease_expires_at.is_(None),
            SyncCheckpoint.lease_expires_at < func.now(),
        ),
        exists().where(SpotifyToken.user_id == SyncCheckpoint.user_id, SpotifyToken.status == "ok"),
    )
