"""The admin API: one router, and admin credentials required on every route under it."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from playlog.web.admin_auth import require_admin
from playlog_api.admin import imports, job_runs, logs, sync, sync_status, system, tokens, users

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"description": "Missing or wrong admin credentials."},
        403: {
            "description": "A personal access token (admin routes take the admin credentials), "
            "or in Basic mode a change a page of another site made a browser send."
        },
    },
)
for feature in (system, users, tokens, sync, sync_status, job_runs, imports, logs):
    router.include_router(feature.router)
