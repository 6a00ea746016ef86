"""Stored log records: browsing with filters, and the retention purge on demand."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, get_args

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, select

from playlog.db.maintenance import purge_logs
from playlog.db.models import LogRecord
from playlog.web.db import DbSession
from playlog.web.pagination import DEFAULT_LIMIT, Keyset, Page, PageCursor, PageLimit
from playlog_api.admin.schemas import LogEntry, PurgeResult, Severity
from playlog_api.dependencies import Settings
from playlog_api.instants import WANTED, Instant

router = APIRouter()

_LOGS = Keyset(tuple[int], LogRecord.id, descending=True)
_SEVERITIES: tuple[Severity, ...] = get_args(Severity)
# Services name themselves in plain words ("api", "collector"); anything else matches no
# record, and a NUL could not even be compared.
SERVICE_NAME = r"^[A-Za-z0-9_.-]+$"


def of_user(user_id: uuid.UUID) -> ColumnElement[bool]:
    """Log records whose context names this user (``context->>'user_id'``)."""
    return LogRecord.context.op("->>")("user_id") == str(user_id)


@router.get("/logs")
async def list_logs(
    session: DbSession,
    service: Annotated[str | None, Query(min_length=1, max_length=64, pattern=SERVICE_NAME)] = None,
    level: Annotated[
        Severity | None, Query(description="Minimum severity: WARNING also returns ERROR.")
    ] = None,
    user_id: Annotated[uuid.UUID | None, Query(description="`user_id` in the context.")] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Case-insensitive text in the message."),
    ] = None,
    since: Annotated[
        Instant | None,
        Query(description="Only records at or after this time: " + WANTED + "."),
    ] = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[LogEntry]:
    """Stored log records of every service, newest first, keyset-paginated."""
    statement = select(LogRecord)
    if service is not None:
        statement = statement.where(LogRecord.service == service)
    if level is not None:
        statement = statement.where(LogRecord.level.in_(_SEVERITIES[_SEVERITIES.index(level) :]))
    if user_id is not None:
        statement = statement.where(of_user(user_id))
    if q is not None:
        statement = statement.where(LogRecord.message.icontains(q, autoescape=True))
    if since is not None:
        statement = statement.where(LogRecord.timestamp >= since)
    rows, next_cursor = await _LOGS.fetch(session, statement, cursor, limit, lambda row: (row.id,))
    return Page(items=[LogEntry.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post("/maintenance/purge-logs")
async def purge_old_logs(
    session: DbSession,
    settings: Settings,
    older_than_days: Annotated[
        int | None, Query(ge=1, le=3650, description="Default: LOG_RETENTION_DAYS.")
    ] = None,
) -> PurgeResult:
    """Delete stored log records older than `older_than_days` days now, instead of waiting
    for the collector's daily purge."""
    days = settings.log_retention_days if older_than_days is None else older_than_days
    deleted = await purge_logs(session, timedelta(days=days))
    return PurgeResult(deleted=deleted, older_than_days=days)
