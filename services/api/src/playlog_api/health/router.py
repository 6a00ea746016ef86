"""Liveness and readiness probes (no authentication: they reveal nothing private)."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from playlog.db.migrate import current_revision, head_revision
from playlog.web.db import DbSession

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    database: Literal["ok", "unreachable"]
    migration_current: str | None
    migration_head: str
    reason: str | None = None


@router.get("/healthz")
async def healthz() -> Liveness:
    """The process is up and serving requests."""
    return Liveness()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(session: DbSession) -> JSONResponse:
    """The database is reachable and its schema is at this code's migration head."""
    body = Readiness(
        status="ready", database="ok", migration_current=None, migration_head=head_revision()
    )
    try:
        body.migration_current = await current_revision(await session.connection())
    except (SQLAlchemyError, OSError) as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        body.database = "unreachable"
        body.reason = "database unreachable"
    else:
        if body.migration_current != body.migration_head:
            body.reason = "database schema is not at the migration head; run `playlog db upgrade`"
    if body.reason is not None:
        body.status = "not_ready"
    return JSONResponse(body.model_dump(), status_code=200 if body.status == "ready" else 503)
