"""Collection health for the user a tool acts for: sync state, job runs and imports.

The admin API shows the same bookkeeping for every user; these tools show one user's own,
so a listener (or their assistant) can tell why the history looks incomplete. Nothing here
reveals server internals: collector lease owners, upload storage paths and credentials
stay out, and stored error messages are cleaned of file paths and credentials first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select, text

from playlog.db.engine import db_now
from playlog.db.models import ImportJob, JobRun, SyncCheckpoint
from playlog.spotify.tokens import TokenState
from playlog.web.pagination import matching
from playlog_api.admin.imports import import_progress, safe_filename
from playlog_api.admin.schemas import ImportJobStatus, ImportProgress, JobStatus, JobType
from playlog_api.admin.users import spotify_status
from playlog_api.cleaning import clean_text
from playlog_api.history.schemas import Limit
from playlog_api.tools.registry import ToolArgs, ToolContext, tool

ERROR_LIMIT = 300
STATS_KEYS = 20
STATS_TEXT_LIMIT = 100


# Two probes of the (user_id, played_at, …) index and sums over the per-track running
# totals (one row per distinct track, not per play).
_STORED = text(
    """
    SELECT (SELECT min(played_at) FROM plays WHERE user_id = :user_id),
        (SELECT max(played_at) FROM plays WHERE user_id = :user_id),
        coalesce(sum(rows), 0), coalesce(sum(plays), 0), count(*),
        (SELECT count(*) FROM coverage_gaps WHERE user_id = :user_id)
    FROM play_tracks WHERE user_id = :user_id
    """
)


def clean_error(message: str | None) -> str | None:
    """A stored error as a user may see it: credentials, e-mail addresses and file paths
    replaced, at most ``ERROR_LIMIT`` characters."""
    return None if message is None else clean_text(message, ERROR_LIMIT)


def compact_stats(stats: dict[str, Any] | None) -> dict[str, Any]:
    """A job's counters: scalar values only (nested structures dropped), text cleaned."""
    compact: dict[str, Any] = {}
    for key, value in (stats or {}).items():
        if len(compact) == STATS_KEYS:
            break
        if isinstance(value, bool | int | float):
            compact[str(key)] = value
        elif isinstance(value, str):
            compact[str(key)] = (clean_error(value) or "")[:STATS_TEXT_LIMIT]
    return compact


class SpotifyConnectionView(BaseModel):
    state: TokenState = Field(
        description="ok; expires_soon (reconnect within 14 days); needs_reauth (the "
        "collector stopped until the user reconnects); not_connected."
    )
    authorized_at: datetime | None
    refresh_token_expires_at: datetime | None = Field(
        description="Spotify refresh tokens die 6 months after the user authorised; "
        "polling stops then until the user reconnects."
    )
    days_until_refresh_token_expiry: float | None
    reason: str | None = Field(description="Why Spotify must be reconnected, if it must.")


class CollectorView(BaseModel):
    status: str = Field(
        description="idle, importing, initial_sync, polling, error, paused or needs_reauth."
    )
    running_now: bool = Field(description="A collector is working on this user right now.")
    initial_sync_completed_at: datetime | None
    last_poll_started_at: datetime | None
    last_poll_completed_at: datetime | None
    latest_played_at: datetime | None = Field(description="Newest play seen from Spotify's API.")
    next_run_at: datetime | None
    consecutive_failures: int
    error: str | None


class StoredHistory(BaseModel):
    rows: int = Field(description="Stored rows: plays and skips.")
    plays: int = Field(description="Rows of 30 s or more, or of unknown length (API).")
    skips: int
    distinct_tracks: int
    first_played_at: datetime | None
    last_played_at: datetime | None
    recorded_gaps: int = Field(
        description="Periods the collector could not see; importing an export fills them."
    )


class SyncStatusResult(BaseModel):
    checked_at: datetime
    spotify: SpotifyConnectionView
    collector: CollectorView | None = Field(description="Null before the first sync.")
    history: StoredHistory


class NoArgs(ToolArgs):
    pass


@tool("ops_sync_status", path="sync-status")
async def ops_sync_status(context: ToolContext, args: NoArgs) -> SyncStatusResult:
    """The health of the user's history collection: the Spotify connection (and when its
    refresh token expires), the collector's state, last poll and next run, its last error,
    recorded coverage gaps, and how many rows are stored over which date range. Use it
    when history looks stale or incomplete, or to check that Spotify is still connected."""
    session = context.session
    user_id = context.user.id
    now = await db_now(session)
    _, token = await spotify_status(session, user_id, now)
    checkpoint = await session.get(SyncCheckpoint, user_id, populate_existing=True)
    first, last, rows, plays, tracks, gaps = (
        await session.execute(_STORED, {"user_id": user_id})
    ).one()
    expires = token.refresh_token_expires_at
    collector = None
    if checkpoint is not None:
        lease = checkpoint.lease_expires_at
        collector = CollectorView(
            status=checkpoint.status,
            running_now=checkpoint.lease_owner is not None and lease is not None and lease > now,
            initial_sync_completed_at=checkpoint.initial_sync_completed_at,
            last_poll_started_at=checkpoint.last_poll_started_at,
            last_poll_completed_at=checkpoint.last_poll_completed_at,
            latest_played_at=checkpoint.latest_played_at,
            next_run_at=checkpoint.next_run_at,
            consecutive_failures=checkpoint.consecutive_failures,
            error=clean_error(checkpoint.error),
        )
    return SyncStatusResult(
        checked_at=now,
        spotify=SpotifyConnectionView(
            state=token.state,
            authorized_at=token.authorized_at,
            refresh_token_expires_at=expires,
            days_until_refresh_token_expiry=(
                round((expires - now).total_seconds() / 86_400, 1) if expires else None
            ),
            reason=clean_error(token.reason),
        ),
        collector=collector,
        history=StoredHistory(
            rows=rows,
            plays=plays,
            skips=rows - plays,
            distinct_tracks=tracks,
            first_played_at=first,
            last_played_at=last,
            recorded_gaps=gaps,
        ),
    )


class JobRunsArgs(ToolArgs):
    limit: Limit = 10
    job_type: JobType | None = Field(
        default=None,
        description="Only this kind: poll (recent plays) or initial_sync.",
    )
    status: JobStatus | None = Field(
        default=None, description="Only runs that ended so (or are running)."
    )


class JobRunItem(BaseModel):
    id: str
    job_type: str
    status: str = Field(description="running, success, partial or error.")
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None = Field(description="Null while running.")
    stats: dict[str, Any] = Field(description="The run's counters (fetched, inserted, …).")
    error: str | None


class JobRuns(BaseModel):
    job_runs: list[JobRunItem] = Field(description="Newest first.")


@tool("ops_latest_job_runs", path="job-runs")
async def ops_latest_job_runs(context: ToolContext, args: JobRunsArgs) -> JobRuns:
    """The user's latest collector job runs, newest first: polls of recent plays and the
    initial sync, each with its status, duration, counters and error (export imports are
    in ops_latest_import_jobs). Filter by job_type or status, for example status=error to
    see what failed."""
    statement = select(JobRun).where(
        JobRun.user_id == context.user.id,
        *matching((JobRun.job_type, args.job_type), (JobRun.status, args.status)),
    )
    runs = await context.session.scalars(
        statement.order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(args.limit)
    )
    return JobRuns(
        job_runs=[
            JobRunItem(
                id=str(run.id),
                job_type=run.job_type,
                status=run.status,
                started_at=run.started_at,
                finished_at=run.finished_at,
                duration_s=(
                    round((run.finished_at - run.started_at).total_seconds(), 3)
                    if run.finished_at
                    else None
                ),
                stats=compact_stats(run.stats),
                error=clean_error(run.error),
            )
            for run in runs
        ]
    )


class ImportJobsArgs(ToolArgs):
    limit: Limit = 10
    status: ImportJobStatus | None = Field(default=None, description="Only imports in this state.")


class ImportJobItem(BaseModel):
    id: str
    status: str = Field(description="pending, running, success, partial, error or cancelled.")
    file_name: str | None = Field(description="The uploaded file's own name.")
    file_size_bytes: int | None
    formats_detected: list[str] = Field(description="History formats found in the export.")
    records_done: int = Field(description="Records read so far.")
    plays_inserted: int = Field(
        description="New plays stored (30-second rule; shorter rows are stored as skips)."
    )
    duplicates: int = Field(description="Records already stored before.")
    skipped: dict[str, int] = Field(description="Records left out, per reason.")
    earliest_played_at: datetime | None
    latest_played_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: ImportProgress
    error: str | None


class ImportJobs(BaseModel):
    import_jobs: list[ImportJobItem] = Field(description="Newest first.")


@tool("ops_latest_import_jobs", path="import-jobs")
async def ops_latest_import_jobs(context: ToolContext, args: ImportJobsArgs) -> ImportJobs:
    """The user's latest imports of a Spotify data export, newest first: status, progress,
    records read, plays stored, duplicates, records skipped per reason, the date range
    imported and any error. Use it to tell whether an uploaded export has been loaded."""
    statement = select(ImportJob).where(
        ImportJob.user_id == context.user.id, *matching((ImportJob.status, args.status))
    )
    jobs = (
        await context.session.scalars(
            statement.order_by(ImportJob.created_at.desc(), ImportJob.id.desc()).limit(args.limit)
        )
    ).all()
    now = await db_now(context.session)
    return ImportJobs(
        import_jobs=[
            ImportJobItem(
                id=str(job.id),
                status=job.status,
                # Writers store a base name; folders are dropped again so no path can show.
                file_name=safe_filename(job.original_filename) if job.original_filename else None,
                file_size_bytes=job.file_size_bytes,
                formats_detected=[f for f in (job.format_detected or "").split(",") if f],
                records_done=job.records_done,
                plays_inserted=job.records_ingested,
                duplicates=job.duplicates,
                skipped={
                    str(reason): count
                    for reason, count in (job.skipped or {}).items()
                    if isinstance(count, int)
                },
                earliest_played_at=job.earliest_played_at,
                latest_played_at=job.latest_played_at,
                created_at=job.created_at,
                started_at=job.started_at,
                finished_at=job.finished_at,
                progress=import_progress(job, now),
                error=clean_error(job.error),
            )
            for job in jobs
        ]
    )
