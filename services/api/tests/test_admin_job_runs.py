"""GET /admin/job-runs: newest first, filters, keyset pagination."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import get_args

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models.sync import JOB_STATUSES, JOB_TYPES
from playlog.testing.factories import add_job_run, add_log, add_user
from playlog.testing.http import walk_pages
from playlog_api.admin.schemas import JobStatus, JobType

BASE = datetime(2025, 6, 1, tzinfo=UTC)


def test_filter_types_match_the_stored_value_sets() -> None:
    assert get_args(JobType) == JOB_TYPES
    assert get_args(JobStatus) == JOB_STATUSES


async def test_pages_walk_newest_first_without_gaps_or_repeats(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await add_user(db_session)
    # Pairs share a start time: the id breaks the tie.
    runs = [
        await add_job_run(db_session, user.id, started_at=BASE + timedelta(minutes=n // 2))
        for n in range(7)
    ]
    await db_session.commit()

    items, pages = await walk_pages(client, "/admin/job-runs", admin, user_id=str(user.id), limit=3)

    assert pages == 3
    expected = sorted(runs, key=lambda run: (run.started_at, run.id), reverse=True)
    assert [item["id"] for item in items] == [str(run.id) for run in expected]


async def test_filters_combine(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await add_user(db_session)
    other = await add_user(db_session, "Other")
    wanted = await add_job_run(db_session, user.id, job_type="initial_sync", status="error")
    await add_job_run(db_session, user.id, job_type="initial_sync", status="success")
    await add_job_run(db_session, user.id, job_type="poll", status="error")
    await add_job_run(db_session, other.id, job_type="initial_sync", status="error")
    await db_session.commit()

    response = await client.get(
        "/admin/job-runs",
        headers=admin,
        params={"user_id": str(user.id), "job_type": "initial_sync", "status": "error"},
    )

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [str(wanted.id)]
    by_user = await client.get("/admin/job-runs", headers=admin, params={"user_id": str(user.id)})
    assert len(by_user.json()["items"]) == 3


async def test_unknown_user_has_no_runs(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.get(
        "/admin/job-runs", headers=admin, params={"user_id": str(uuid.uuid4())}
    )
    assert response.json() == {"items": [], "next_cursor": None}


async def test_a_cursor_of_another_list_is_422(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    for n in range(2):
        await add_log(db_session, f"line {n}", service="cursor-test")
    await db_session.commit()
    logs = await client.get(
        "/admin/logs", headers=admin, params={"service": "cursor-test", "limit": 1}
    )
    logs_cursor = logs.json()["next_cursor"]
    assert logs_cursor is not None

    response = await client.get("/admin/job-runs", headers=admin, params={"cursor": logs_cursor})

    assert response.status_code == 422
    assert "not a cursor of this list" in response.json()["error"]["message"]


async def test_kinds_the_collector_never_records_are_not_filters(
    client: httpx.AsyncClient, admin: dict[str, str], personal: dict[str, str]
) -> None:
    # Imports are import_jobs rows (their own routes and tool), not job runs.
    for kind in ("import_zip", "enrich"):
        listed = await client.get("/admin/job-runs", headers=admin, params={"job_type": kind})
        assert listed.status_code == 422, listed.text
        assert "job_type" in listed.text
        tool = await client.get("/me/job-runs", headers=personal, params={"job_type": kind})
        assert tool.status_code == 422, tool.text
