"""Import jobs: claiming with a lease, reaping jobs whose worker died, progress, the end.

A job is claimed by one worker at a time (``FOR UPDATE SKIP LOCKED`` + lease). Progress
writes renew the lease and are refused once the job is no longer this worker's (lease
lost, or cancelled by an administrator): the importer then stops. A job whose lease ran
out is run again; members its earlier run stored are recognised and counted, not
re-imported. The upload is deleted whenever a job ends.

The job's counts are written with each member, in its transaction; its report (which
lists every member, so grows with them) about once a second, and whole at the end.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, Boolean, DateTime, String, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.errors import AppError
from playlog.exports.importer import ImportCancelled, Progress, import_export
from playlog.exports.report import ImportReport, MemberReport, Totals
from playlog.exports.storage import delete_upload
from playlog.settings import ImportSettings

# Ours among the application's advisory locks ("PLG2"), held by a claim's transaction.
_CLAIMS_TAKE_TURNS = text(f"SELECT pg_advisory_xact_lock({0x504C_4732}, 0)")
_CLAIM = text(
    """
    UPDATE import_jobs SET status = 'running', lease_owner = :owner,
        lease_expires_at = now() + :lease, attempts = attempts + 1,
        started_at = coalesce(started_at, now()), error = NULL
    WHERE id = (
        SELECT j.id FROM import_jobs j
        WHERE (j.status = 'pending' OR (j.status = 'running' AND j.lease_expires_at < now()))
          AND j.storage_path IS NOT NULL AND j.attempts < :max_attempts
          -- one import per user at a time
          AND NOT EXISTS (SELECT 1 FROM import_jobs o
                          WHERE o.user_id = j.user_id AND o.id <> j.id
                            AND o.status = 'running' AND o.lease_expires_at >= now())
        ORDER BY j.created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, user_id, storage_path, attempts
    """
)
# Jobs nobody can finish any more: their worker died too often, or a command-line import
# (which has no upload to run again) stopped half-way.
_GIVE_UP = text(
    """
    UPDATE import_jobs SET status = 'error', finished_at = now(), lease_owner = NULL,
        lease_expires_at = NULL,
        error = CASE WHEN storage_path IS NULL
                     THEN 'the importing process stopped before the import ended'
                     ELSE 'the import stopped ' || attempts || ' times before it ended' END
    WHERE status = 'running' AND lease_expires_at < now()
      AND (storage_path IS NULL OR attempts >= :max_attempts)
    RETURNING storage_path
    """
)
# An administrator cancelled a running job whose worker then died: nobody deletes its
# upload unless this does.
_ORPHANED_CANCELS = text(
    """
    UPDATE import_jobs SET lease_owner = NULL, lease_expires_at = NULL,
        finished_at = coalesce(finished_at, now())
    WHERE status = 'cancelled' AND lease_expires_at < now()
    RETURNING storage_path
    """
)
_PROGRESS = """
    UPDATE import_jobs SET bytes_done = $3, records_done = $4, records_ingested = $5,
        report = coalesce($7::jsonb, report), lease_expires_at = now() + $6::interval,
        updated_at = now()
    WHERE id = $1 AND lease_owner = $2 AND status = 'running'
    RETURNING 1
"""
# records_done moves too, so between progress steps the job never shows more plays
# ingested than records read.
_MEMBER_STORED = """
    UPDATE import_jobs SET records_ingested = $3, duplicates = $4, skipped = $5::jsonb,
        format_detected = $6, earliest_played_at = $7, latest_played_at = $8,
        lease_expires_at = now() + $9::interval, updated_at = now(),
        records_done = $10
    WHERE id = $1 AND lease_owner = $2 AND status = 'running'
    RETURNING 1
"""
_FINISH = text(
    """
    UPDATE import_jobs SET
        status = CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE :status END,
        error = coalesce(:error, error), finished_at = now(), report = :report,
        records_done = :records, records_ingested = :inserted, duplicates = :duplicates,
        skipped = :skipped, format_detected = :formats, earliest_played_at = :earliest,
        latest_played_at = :latest,
        bytes_done = CASE WHEN :complete THEN coalesce(file_size_bytes, bytes_done)
                          ELSE bytes_done END,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = :id AND lease_owner = :owner AND status IN ('running', 'cancelled')
    RETURNING status, storage_path
    """
).bindparams(
    bindparam("status", type_=String),
    bindparam("complete", type_=Boolean),
    bindparam("error", type_=String),
    bindparam("report", type_=JSONB),
    bindparam("records", type_=BigInteger),
    bindparam("inserted", type_=BigInteger),
    bindparam("duplicates", type_=BigInteger),
    bindparam("skipped", type_=JSONB),
    bindparam("formats", type_=String),
    bindparam("earliest", type_=DateTime(timezone=True)),
    bindparam("latest", type_=DateTime(timezone=True)),
)
_REQUEUE = text(
    """
    UPDATE import_jobs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
        attempts = greatest(attempts - 1, 0)
    WHERE id = :id AND lease_owner = :owner AND status = 'running'
    """
)


@dataclass(frozen=True)
class ClaimedImport:
    job_id: uuid.UUID
    user_id: uuid.UUID
    path: Path
    owner: str
    attempt: int
    # Where the job's upload lives and may be deleted from; None for a command-line
    # import, which reads the user's own file.
    upload_dir: Path | None


async def claim(
    engine: AsyncEngine, owner: str, lease: timedelta, max_attempts: int, upload_dir: Path
) -> ClaimedImport | None:
    """Give up on jobs that cannot finish, then claim the oldest runnable one.

    Claims take turns (a transaction lock of their own): the claim's check that the
    user has no running import then sees every claim committed before it, where two
    claims at once would each miss the other's. Uploads of jobs given up on are deleted
    once that is committed."""
    async with engine.begin() as connection:
        await connection.execute(_CLAIMS_TAKE_TURNS)
        gone = [
            path for (path,) in await connection.execute(_GIVE_UP, {"max_attempts": max_attempts})
        ]
        gone += [path for (path,) in await connection.execute(_ORPHANED_CANCELS)]
        row = (
            await connection.execute(
                _CLAIM, {"owner": owner, "lease": lease, "max_attempts": max_attempts}
            )
        ).first()
    for path in gone:
        await delete_upload(upload_dir, path)
    if row is None:
        return None
    return ClaimedImport(
        row.id, row.user_id, Path(row.storage_path), owner, row.attempts, upload_dir
    )


class JobHooks:
    """Writes a job's progress and report; stops the import when the job is not ours."""

    def __init__(
        self, engine: AsyncEngine, job: ClaimedImport, lease: timedelta, stop: threading.Event
    ) -> None:
        self.engine = engine
        self.job = job
        self.lease = lease
        # Set when the worker shuts down: the job goes back to pending for another one.
        self.stop = stop
        # Members in the report last written: none is written before there is one.
        self._reported = 0

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise ImportCancelled("the collector is stopping")

    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, totals: Totals
    ) -> None:
        # Before the member commits: a stopping worker leaves it to the job's next run.
        self._check_stop()
        # The counts only (the report follows with the next progress): they stay the
        # member's own work, whatever happens to the worker after this commit.
        ok = await connection.fetchval(
            _MEMBER_STORED,
            self.job.job_id,
            self.job.owner,
            totals.plays_inserted,
            totals.duplicates,
            json.dumps(totals.skipped_by_reason),
            ",".join(totals.format_names) or None,
            totals.earliest,
            totals.latest,
            self.lease,
            totals.records,
        )
        if not ok:
            raise ImportCancelled("the job was cancelled or handed to another worker")

    async def progress(self, progress: Progress) -> None:
        self._check_stop()
        # The report so far, unless no member was handled since it was last written (a
        # large member takes many progress steps).
        report = None
        if len(progress.files) != self._reported:
            report = report_so_far(progress.files).model_dump_json()
        async with self.engine.connect() as wrapper:
            raw = await wrapper.get_raw_connection()
            connection: asyncpg.Connection = raw.driver_connection
            ok = await connection.fetchval(
                _PROGRESS,
                self.job.job_id,
                self.job.owner,
                progress.bytes_done,
                progress.records_done,
                progress.plays_inserted,
                self.lease,
                report,
            )
        if not ok:
            raise ImportCancelled("the job was cancelled or handed to another worker")
        self._reported = len(progress.files)


def report_so_far(
    files: list[MemberReport],
    started: float | None = None,
    *,
    ignored: list[str] | None = None,
    error: str | None = None,
    cancelled: bool = False,
) -> ImportReport:
    """The report of the members handled so far (by an import that has not ended, or
    stopped half-way)."""
    elapsed = time.monotonic() - started if started is not None else 0.0
    return ImportReport.build(
        files, ignored=ignored or [], elapsed_s=elapsed, error=error, cancelled=cancelled
    )


async def finish(
    engine: AsyncEngine,
    job: ClaimedImport,
    report: ImportReport,
    *,
    complete: bool,
) -> str | None:
    """Record the end of a job with its report (of the members handled, for an import
    that stopped half-way) and delete its upload; returns the final status. ``complete``
    says the import read the whole file (whatever became of each history file in it):
    all of its bytes are done then, and otherwise as many as the last progress said."""
    values: dict[str, Any] = {
        "id": job.job_id,
        "complete": complete,
        "owner": job.owner,
        "status": report.status,
        "error": report.error,
        "report": report.model_dump(mode="json"),
        "records": report.records_seen,
        "inserted": report.plays_inserted,
        "duplicates": report.duplicates,
        "skipped": report.skipped,
        "formats": ",".join(report.formats) or None,
        "earliest": report.earliest,
        "latest": report.latest,
    }
    async with engine.begin() as connection:
        row = (await connection.execute(_FINISH, values)).first()
    if row is None:
        return None
    if job.upload_dir is not None:
        await delete_upload(job.upload_dir, row.storage_path)
    return str(row.status)


async def requeue(engine: AsyncEngine, job: ClaimedImport) -> None:
    """Hand a job back unfinished (the worker is stopping); the next run resumes it."""
    async with engine.begin() as connection:
        await connection.execute(_REQUEUE, {"id": job.job_id, "owner": job.owner})


@dataclass(frozen=True)
class JobOutcome:
    status: str | None
    report: ImportReport | None
    error: str | None = None


async def run_job(
    engine: AsyncEngine, job: ClaimedImport, settings: ImportSettings, hooks: JobHooks
) -> JobOutcome:
    """Run a claimed job to its end, or back to pending when its worker is stopping (the
    outcome's report is None then: the job has not ended)."""
    started = time.monotonic()
    # The members handled and the files ignored, also when the import stops half-way.
    files: list[MemberReport] = []
    ignored: list[str] = []
    complete = False
    try:
        report = await import_export(
            engine,
            job.user_id,
            job.path,
            settings,
            job_id=job.job_id,
            hooks=hooks,
            files=files,
            ignored=ignored,
        )
        complete = True
    except ImportCancelled as exc:
        if hooks.stop.is_set():
            await requeue(engine, job)
            return JobOutcome("pending", None, str(exc))
        report = report_so_far(files, started, ignored=ignored, cancelled=True)
    except (AppError, OSError) as exc:
        error = exc.message if isinstance(exc, AppError) else f"the upload cannot be read ({exc})"
        report = report_so_far(files, started, ignored=ignored, error=error)
    return JobOutcome(await finish(engine, job, report, complete=complete), report, report.error)
