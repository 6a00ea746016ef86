"""Export imports: uploading a user's Spotify export ZIP, following and cancelling the jobs.

An upload becomes an ``import_jobs`` row in status ``pending`` and a file at
``upload_path(UPLOAD_DIR, user, job)``; ``NOTIFY`` on ``IMPORT_CHANNEL`` (payload: the job
id, delivered when the request commits) wakes the collectors, which do the import.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.engine import db_now
from playlog.db.models import ImportJob
from playlog.db.models.imports import FINISHED_IMPORT_STATUSES, IMPORT_CHANNEL
from playlog.errors import Conflict, NotFound
from playlog.exports.storage import delete_upload, upload_path
from playlog.users import find_user
from playlog.web.db import DbSession, get_sessionmaker
from playlog.web.pagination import DEFAULT_LIMIT, Keyset, Page, PageCursor, PageLimit, matching
from playlog_api.admin.schemas import NO_JOB, ImportJobStatus, ImportJobView, ImportProgress
from playlog_api.admin.uploads import FILE_FIELD, RAW_TYPES, StagedUpload, ZipUpload
from playlog_api.dependencies import Settings

router = APIRouter()

DEFAULT_FILENAME = "upload.zip"
MAX_FILENAME_LENGTH = 255
CANCELLED_ERROR = "cancelled by an administrator"

_IMPORT_JOBS = Keyset(
    tuple[AwareDatetime, uuid.UUID], ImportJob.created_at, ImportJob.id, descending=True
)
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            **{
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in RAW_TYPES
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                    "required": [FILE_FIELD],
                }
            },
        },
    }
}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such user"},
    413: {"description": "the ZIP is larger than IMPORT_MAX_ZIP_SIZE_MB"},
    415: {"description": "not a ZIP file, or a Content-Type other than a ZIP or multipart"},
    422: {"description": "an empty body, or a multipart body without the field `file`"},
}


def safe_filename(name: str | None) -> str:
    """The client's file name as a plain base name: folders (either slash) and control
    characters dropped, at most 255 characters; ``upload.zip`` when nothing is left."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(char for char in base if char.isprintable()).strip()
    return base[:MAX_FILENAME_LENGTH] if base not in ("", ".", "..") else DEFAULT_FILENAME


async def stage_upload(
    user_id: uuid.UUID, request: Request, settings: Settings
) -> AsyncIterator[StagedUpload]:
    """404 for an unknown user, then the place of the upload, removed again when the
    request fails, also when its commit does.

    The user is looked up in a short session of its own, so no database connection is
    held while the body streams in. Declared before ``DbSession`` in the endpoint, this
    dependency closes after it, and so sees a failed commit.
    """
    async with get_sessionmaker(request)() as session:
        await find_user(session, user_id)
    job_id = uuid.uuid4()
    staged = StagedUpload(
        user_id, job_id, upload_path(settings.upload_dir.absolute(), user_id, job_id)
    )
    try:
        yield staged
    except BaseException:
        staged.discard()
        raise


StagedZip = Annotated[StagedUpload, Depends(stage_upload, scope="function")]


async def delete_after_commit(settings: Settings) -> AsyncIterator[list[str]]:
    """Storage paths of uploads to delete once the request has committed.

    Declared before ``DbSession`` in the endpoint, this dependency closes after it: a
    failed commit (the job stays as it was) deletes nothing.
    """
    paths: list[str] = []
    yield paths
    for path in paths:
        await delete_upload(settings.upload_dir, path)


UploadsToDelete = Annotated[list[str], Depends(delete_after_commit, scope="function")]


def import_progress(job: ImportJob, now: datetime) -> ImportProgress:
    """Progress at ``now`` (the database's clock): the share of the file read, the rate
    since the start (until the end, for a finished job) and, while running, the time
    left at that rate."""
    fraction = None
    if job.file_size_bytes:
        fraction = min(max(job.bytes_done / job.file_size_bytes, 0.0), 1.0)
    end = now if job.status == "running" else job.finished_at
    elapsed = (end - job.started_at).total_seconds() if end and job.started_at else None
    if job.status == "pending" or not elapsed or elapsed < 0:
        return ImportProgress(fraction=fraction, records_per_second=None, eta_seconds=None)
    eta = None
    if job.status == "running" and fraction:
        eta = elapsed * (1 - fraction) / fraction
    return ImportProgress(
        fraction=fraction, records_per_second=job.records_done / elapsed, eta_seconds=eta
    )


def job_view(job: ImportJob, now: datetime) -> ImportJobView:
    """The job as the api shows it, its progress computed at ``now``."""
    columns = {
        name: getattr(job, name) for name in ImportJobView.model_fields if name != "progress"
    }
    return ImportJobView(**columns, progress=import_progress(job, now))


async def _find_job(session: AsyncSession, job_id: uuid.UUID, *, lock: bool) -> ImportJob:
    job = await session.get(
        ImportJob, job_id, populate_existing=True, with_for_update=True if lock else None
    )
    if job is None:
        raise NotFound(f"no import job with id {job_id}")
    return job


async def load_import_job(job_id: uuid.UUID, session: DbSession) -> ImportJob:
    return await _find_job(session, job_id, lock=False)


async def lock_import_job(job_id: uuid.UUID, session: DbSession) -> ImportJob:
    """The job, locked until the request commits: a collector claiming it meanwhile
    waits or skips it, so its status cannot change under the request."""
    return await _find_job(session, job_id, lock=True)


LoadedImportJob = Annotated[ImportJob, Depends(load_import_job)]
LockedImportJob = Annotated[ImportJob, Depends(lock_import_job)]


# The one route whose body is larger than the api's cap on bodies: it streams the upload
# to disk under IMPORT_MAX_ZIP_SIZE_MB instead.
UPLOAD_PATH = r"/admin/users/[^/]+/imports/zip"


@router.post(
    "/users/{user_id}/imports/zip",
    status_code=202,
    responses=_UPLOAD_ERRORS,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_zip(
    # Before the session: its cleanup must run after the commit (see stage_upload).
    staged: StagedZip,
    request: Request,
    session: DbSession,
    settings: Settings,
    filename: Annotated[
        str | None,
        Query(max_length=1024, description="Name of the file; only its base name is kept."),
    ] = None,
) -> ImportJobView:
    """Upload a Spotify export ZIP for this user and queue its import (202: a collector
    does it in the background).

    Send the ZIP as the body (`Content-Type: application/zip`,
    `application/x-zip-compressed` or `application/octet-stream`, name in `filename`),
    or as the field `file` of a `multipart/form-data` body (other fields are ignored;
    `filename` overrides the part's file name). The body streams to disk and is refused
    as soon as it is not a ZIP (415) or exceeds IMPORT_MAX_ZIP_SIZE_MB (413); a refused
    or interrupted upload leaves neither a file nor a job.
    """
    upload = ZipUpload(request, settings.import_max_zip_size_bytes)
    received = await upload.save_to(await staged.open())
    # The user may have been deleted while the body streamed in.
    await find_user(session, staged.user_id, lock=True)
    await staged.complete()
    job = ImportJob(
        id=staged.job_id,
        user_id=staged.user_id,
        status="pending",
        storage_path=str(staged.path),
        original_filename=safe_filename(filename or received.filename),
        file_size_bytes=received.size,
    )
    session.add(job)
    await session.flush()
    await session.execute(select(func.pg_notify(IMPORT_CHANNEL, str(job.id))))
    return job_view(job, await db_now(session))


@router.get("/import-jobs")
async def list_import_jobs(
    session: DbSession,
    user_id: uuid.UUID | None = None,
    status: ImportJobStatus | None = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[ImportJobView]:
    """Import jobs, newest first, optionally of one user and one status; keyset-paginated."""
    statement = select(ImportJob).where(
        *matching((ImportJob.user_id, user_id), (ImportJob.status, status))
    )
    rows, next_cursor = await _IMPORT_JOBS.fetch(
        session, statement, cursor, limit, lambda row: (row.created_at, row.id)
    )
    now = await db_now(session)
    return Page(items=[job_view(row, now) for row in rows], next_cursor=next_cursor)


@router.get("/import-jobs/{job_id}", responses=NO_JOB)
async def get_import_job(job: LoadedImportJob, session: DbSession) -> ImportJobView:
    """One import job with its counts, report and progress: the fraction of the file
    read, records per second, and for a running import the estimated seconds left."""
    return job_view(job, await db_now(session))


@router.post(
    "/import-jobs/{job_id}/cancel",
    responses={**NO_JOB, 409: {"description": "the import has already ended"}},
)
async def cancel_import_job(
    # Before the job (and its session): the file goes only once the cancel has committed.
    doomed: UploadsToDelete,
    job: LockedImportJob,
    session: DbSession,
) -> ImportJobView:
    """Cancel an import. A pending one ends at once and its uploaded file is deleted; a
    running one is marked cancelled, and its collector stops at its next step and deletes
    the file. 409 when the import has already ended."""
    if job.status in FINISHED_IMPORT_STATUSES:
        raise Conflict(
            f"this import has already ended with status '{job.status}': only pending "
            "and running imports can be cancelled"
        )
    was_pending = job.status == "pending"
    now = await db_now(session)
    job.status = "cancelled"
    job.error = CANCELLED_ERROR
    job.finished_at = now
    await session.flush()
    if was_pending and job.storage_path:
        doomed.append(job.storage_path)
    return job_view(job, now)
