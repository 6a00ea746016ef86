"""GET /admin/sync-status: counts, due and active work, recent errors, live workers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.engine import db_now
from playlog.db.models import WorkerHeartbeat
from playlog.db.models.imports import IMPORT_STATUSES
from playlog.db.models.sync import CHECKPOINT_STATUSES
from playlog.testing.factories import add_import_job, add_job_run, add_user


async def status(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/admin/sync-status", headers=admin)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


def heartbeat(worker_id: str, last_seen_at: datetime, *, stopped: bool = False) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker_id=worker_id,
        service="collector",
        hostname="test",
        pid=1,
        version="test",
        started_at=last_seen_at,
        last_seen_at=last_seen_at,
        stopped_at=last_seen_at if stopped else None,
    )


async def test_sync_status_counts_what_the_collector_sees(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    before = await status(client, admin)
    assert set(before["checkpoints"]) == set(CHECKPOINT_STATUSES)
    assert set(before["imports"]) == set(IMPORT_STATUSES)

    now = await db_now(db_session)
    hour = timedelta(hours=1)
    await add_user(db_session, "Due", checkpoint="idle", next_run_at=now - hour)
    await add_user(db_session, "New", checkpoint="idle")  # never run: due
    await add_user(db_session, "Later", checkpoint="idle", next_run_at=now + hour)
    await add_user(db_session, "Held", checkpoint="paused", next_run_at=now - hour)
    await add_user(db_session, "Reauth", checkpoint="needs_reauth", next_run_at=now - hour)
    # A checkpoint without a usable token is never claimed either.
    await add_user(
        db_session, "Unplugged", authorized_days_ago=None, checkpoint="idle", next_run_at=now - hour
    )
    working = await add_user(
        db_session,
        "Working",
        checkpoint="polling",
        next_run_at=now - hour,  # overdue, but a collector holds it: not due
        lease_owner="collector@a:1",
        lease_expires_at=now + timedelta(minutes=2),
    )
    await add_user(  # a lease that ran out is not active work
        db_session,
        "Crashed",
        checkpoint="polling",
        next_run_at=now + hour,
        lease_owner="collector@b:2",
        lease_expires_at=now - timedelta(minutes=2),
    )
    await add_job_run(db_session, working.id, status="running")
    failed = await add_job_run(db_session, working.id, status="error", error="Spotify 500")
    await add_import_job(db_session, working.id, status="pending")
    await add_import_job(db_session, working.id, status="pending")
    db_session.add_all(
        [
            heartbeat("alive", now - timedelta(seconds=5)),
            heartbeat("silent", now - timedelta(minutes=5)),
            heartbeat("stopped", now - timedelta(seconds=5), stopped=True),
        ]
    )
    await db_session.commit()

    after = await status(client, admin)

    assert grown(before["checkpoints"], after["checkpoints"]) == {
        "idle": 4,
        "paused": 1,
        "needs_reauth": 1,
        "polling": 2,
    }
    assert after["due_now"] - before["due_now"] == 2
    [active] = [work for work in after["active"] if work["user_id"] == str(working.id)]
    assert datetime.fromisoformat(active.pop("lease_expires_at")) == now + timedelta(minutes=2)
    assert active == {
        "user_id": str(working.id),
        "display_name": "Working",
        "status": "polling",
        "lease_owner": "collector@a:1",
    }
    assert "collector@b:2" not in {w["lease_owner"] for w in after["active"]}
    assert after["running_jobs"] - before["running_jobs"] == 1
    assert grown(before["imports"], after["imports"]) == {"pending": 2}
    assert after["recent_errors"][0]["id"] == str(failed.id)
    assert after["recent_errors"][0]["error"] == "Spotify 500"
    assert all(run["status"] == "error" for run in after["recent_errors"])
    assert after["workers_alive"] - before["workers_alive"] == 1
