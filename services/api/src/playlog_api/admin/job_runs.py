"""Job runs of the collector (polls and initial syncs), newest first."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import AwareDatetime
from sqlalchemy import select

from playlog.db.models import JobRun
from playlog.web.db import DbSession
from playlog.web.pagination import DEFAULT_LIMIT, Keyset, Page, PageCursor, PageLimit, matching
from playlog_api.admin.schemas import JobRunView, JobStatus, JobType

router = APIRouter()

_JOB_RUNS = Keyset(tuple[AwareDatetime, uuid.UUID], JobRun.started_at, JobRun.id, descending=True)


@router.get("/job-runs")
async def list_job_runs(
    session: DbSession,
    user_id: uuid.UUID | None = None,
    job_type: JobType | None = None,
    status: JobStatus | None = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[JobRunView]:
    """Job runs, newest first, optionally of one user, one job type and one status;
    keyset-paginated."""
    statement = select(JobRun).where(
        *matching((JobRun.user_id, user_id), (JobRun.job_type, job_type), (JobRun.status, status))
    )
    rows, next_cursor = await _JOB_RUNS.fetch(
        session, statement, cursor, limit, lambda row: (row.started_at, row.id)
    )
    return Page(items=[JobRunView.model_validate(row) for row in rows], next_cursor=next_cursor)
