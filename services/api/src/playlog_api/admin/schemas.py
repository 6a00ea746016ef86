"""Response models and filter types of the admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from playlog.spotify.tokens import TokenState

# The value sets of playlog.db.models.sync as types, so a bad filter value is a 422.
# A test checks that they match the CHECK constraints' tuples.
JobType = Literal["initial_sync", "poll"]
JobStatus = Literal["running", "success", "partial", "error"]
# The statuses of playlog.db.models.imports.
ImportJobStatus = Literal["pending", "running", "success", "partial", "error", "cancelled"]
# Log levels, least severe first; a level filter means "this one or more severe".
Severity = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# The documented answers of routes that load one user or import job, or answer 404.
NO_USER: dict[int | str, dict[str, Any]] = {404: {"description": "No user with this id."}}
NO_JOB: dict[int | str, dict[str, Any]] = {404: {"description": "No import job with this id."}}


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class WorkerStatus(BaseModel):
    worker_id: str
    service: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    activity: str
    alive: bool
    seconds_since_seen: float


class SystemStatus(BaseModel):
    version: str
    migration_current: str | None
    migration_head: str
    workers: list[WorkerStatus]


class SpotifyConnection(BaseModel):
    state: TokenState
    authorized_at: datetime | None
    refresh_token_expires_at: datetime | None
    reason: str | None
    scope: str | None


class Checkpoint(_FromRow):
    """The collector's state for one user (``sync_checkpoints``)."""

    status: str
    initial_sync_started_at: datetime | None
    initial_sync_completed_at: datetime | None
    initial_sync_earliest_played_at: datetime | None
    last_poll_started_at: datetime | None
    last_poll_completed_at: datetime | None
    latest_played_at: datetime | None
    next_run_at: datetime | None
    sync_requested_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    consecutive_failures: int
    error: str | None
    updated_at: datetime


class SyncState(BaseModel):
    """Answer of the sync controls: the checkpoint (null when the user has none yet) and
    the Spotify connection state that decides whether the collector can poll."""

    user_id: uuid.UUID
    spotify: TokenState
    checkpoint: Checkpoint | None


class JobRunView(_FromRow):
    id: uuid.UUID
    user_id: uuid.UUID
    job_type: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    stats: dict[str, Any]
    error: str | None


class ImportJobSummary(_FromRow):
    id: uuid.UUID
    status: str
    original_filename: str | None
    file_size_bytes: int | None
    records_done: int
    records_ingested: int
    duplicates: int
    created_at: datetime
    finished_at: datetime | None
    error: str | None


class ImportProgress(BaseModel):
    """How far an import has come, at the database's clock."""

    # bytes_done / file_size_bytes (0 to 1); null while the size is unknown.
    fraction: float | None
    # records_done per second since started_at (running) or from start to finish
    # (finished); null before the import started.
    records_per_second: float | None
    # Running imports only: the time taken so far, scaled by the fraction still to do.
    eta_seconds: float | None


class ImportJobView(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    original_filename: str | None
    file_size_bytes: int | None
    format_detected: str | None
    bytes_done: int
    records_done: int
    records_ingested: int
    duplicates: int
    # Records left out, per reason.
    skipped: dict[str, Any]
    # The importer's report once the import has ended.
    report: dict[str, Any] | None
    earliest_played_at: datetime | None
    latest_played_at: datetime | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: ImportProgress


class CoverageGapView(_FromRow):
    id: int
    gap_from: datetime
    gap_to: datetime
    detected_at: datetime


class UserSummary(BaseModel):
    id: uuid.UUID
    display_name: str | None
    spotify_user_id: str | None
    created_at: datetime
    spotify: TokenState
    # Checkpoint fields; null when the user has no checkpoint yet.
    sync_status: str | None
    latest_played_at: datetime | None
    last_poll_completed_at: datetime | None
    next_run_at: datetime | None
    error: str | None


class UserDetail(BaseModel):
    id: uuid.UUID
    display_name: str | None
    email: str | None
    timezone: str
    spotify_user_id: str | None
    created_at: datetime
    spotify: SpotifyConnection
    checkpoint: Checkpoint | None
    plays_total: int
    recent_jobs: list[JobRunView]
    recent_imports: list[ImportJobSummary]
    gaps: list[CoverageGapView]


class ConnectionCheck(BaseModel):
    spotify_user_id: str
    display_name: str | None
    spotify: SpotifyConnection


class ActiveWork(BaseModel):
    user_id: uuid.UUID
    display_name: str | None
    status: str
    lease_owner: str
    lease_expires_at: datetime


class SyncStatus(BaseModel):
    # Checkpoints per status; every status is present, zero when none.
    checkpoints: dict[str, int]
    # Checkpoints the collector would pick up now (not paused or needs_reauth, next run due).
    due_now: int
    # Users a collector holds a live lease on.
    active: list[ActiveWork]
    running_jobs: int
    # Import jobs per status; every status is present.
    imports: dict[str, int]
    # The newest failed job runs.
    recent_errors: list[JobRunView]
    workers_alive: int


class LogEntry(_FromRow):
    id: int
    timestamp: datetime
    service: str
    level: str
    logger: str | None
    message: str
    context: dict[str, Any]


class PurgeResult(BaseModel):
    deleted: int
    older_than_days: int
