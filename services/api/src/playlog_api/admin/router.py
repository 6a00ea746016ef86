"""Admin endpoints (admin credentials required on every route)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from playlog.web.admin_auth import require_admin
from playlog.web.db import DbSession
from playlog_api.admin.schemas import SystemStatus
from playlog_api.admin.service import system_status

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/system")
async def get_system_status(session: DbSession) -> SystemStatus:
    """Schema version and the liveness of every collector process that has reported in."""
    return await system_status(session)
