"""The collection-health tools: sync status, job runs and import jobs of one user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import ImportJob, JobRun, SyncCheckpoint, User
from playlog.spotify.tokens import REFRESH_TOKEN_LIFETIME
from playlog.testing.factories import add_gap, add_import_job, add_job_run, add_user
from playlog.testing.history import add_listens, add_track, token_headers

BASE = datetime(2026, 3, 1, 12, tzinfo=UTC)
UPLOADS = "/srv/playlog/uploads"
SECRET = "s3cr3t-value-9f8e"
LONG_ERROR = (
    f"the upload cannot be read ([Errno 2] No such file or directory: '{UPLOADS}/a/b.zip') "
    f"while refreshing with refresh_token={SECRET} for ada@example.com "
    f"(Authorization: Bearer {SECRET}) " + "x" * 400
)
LEAKS = (UPLOADS, SECRET, "lease-host-7", "ada@example.com")


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def assert_no_leaks(response: httpx.Response) -> None:
    for leak in LEAKS:
        assert leak not in response.text, leak


@pytest_asyncio.fixture
async def ada(db_session: AsyncSession) -> User:
    user = await add_user(db_session, "Ada", authorized_days_ago=175, checkpoint="polling")
    user.email = "ada@example.com"
    await db_session.flush()
    return user


@pytest_asyncio.fixture
async def ada_token(db_session: AsyncSession, ada: User) -> dict[str, str]:
    return await token_headers(db_session, ada.id)


@pytest_asyncio.fixture
async def bob(db_session: AsyncSession) -> User:
    return await add_user(db_session, "Bob")


async def _runs(session: AsyncSession, ada: User, bob: User) -> list[JobRun]:
    kinds = ["poll", "poll", "initial_sync", "poll", "initial_sync", "poll", "poll"]
    statuses = ["success", "error", "success", "partial", "error", "success", "running"]
    runs = []
    for number in range(14):
        started = BASE + timedelta(hours=number)
        run = await add_job_run(
            session,
            ada.id,
            job_type=kinds[number % 7],
            status=statuses[number % 7],
            started_at=started,
            error=LONG_ERROR if statuses[number % 7] == "error" else None,
        )
        if run.status != "running":
            run.finished_at = started + timedelta(seconds=number * 1.5 + 0.25)
        run.stats = {"fetched": number, "stop_reason": "max_pages", "pages": {"nested": 1}}
        runs.append(run)
    # Bob's runs are newer than every one of Ada's: a leak would come first.
    for number in range(3):
        await add_job_run(session, bob.id, started_at=BASE + timedelta(days=5, hours=number))
    await session.flush()
    return runs


def newest(runs: list[JobRun], count: int) -> list[str]:
    return [str(r.id) for r in sorted(runs, key=lambda r: r.started_at, reverse=True)][:count]


async def test_job_runs_are_the_users_own_newest_first_with_filters(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    ada: User,
    bob: User,
    ada_token: dict[str, str],
) -> None:
    runs = await _runs(db_session, ada, bob)

    response = await client.get("/me/job-runs", headers=ada_token)
    assert response.status_code == 200, response.text
    items = response.json()["job_runs"]
    assert [item["id"] for item in items] == newest(runs, 10)
    by_id = {str(run.id): run for run in runs}
    for item in items:
        run = by_id[item["id"]]
        assert item["job_type"] == run.job_type
        assert item["status"] == run.status
        assert at(item["started_at"]) == run.started_at
        if run.finished_at is None:
            assert item["duration_s"] is None
        else:
            assert item["duration_s"] == (run.finished_at - run.started_at).total_seconds()
        assert item["stats"] == {"fetched": run.stats["fetched"], "stop_reason": "max_pages"}
        if run.error is None:
            assert item["error"] is None
        else:
            assert len(item["error"]) == 300
            assert item["error"].startswith("the upload cannot be read ([Errno 2]")
            assert "[path]" in item["error"]
            assert "refresh_token=[redacted]" in item["error"]
            assert "for [email] (Authorization: Bearer [redacted])" in item["error"]
    assert_no_leaks(response)

    job_filters: list[dict[str, str | int]] = [
        {"job_type": "poll"},
        {"job_type": "initial_sync"},
        {"status": "error"},
        {"job_type": "poll", "status": "error", "limit": 1},
        {"limit": 3},
        {"limit": 50},
    ]
    for params in job_filters:
        filtered = await client.get("/me/job-runs", headers=ada_token, params=params)
        assert filtered.status_code == 200, filtered.text
        matching = [
            run
            for run in runs
            if run.job_type == params.get("job_type", run.job_type)
            and run.status == params.get("status", run.status)
        ]
        expected = newest(matching, int(params.get("limit", 10)))
        assert [item["id"] for item in filtered.json()["job_runs"]] == expected, params


async def test_the_admin_reads_one_named_users_runs(
    client: httpx.AsyncClient, db_session: AsyncSession, ada: User, bob: User, admin: dict[str, str]
) -> None:
    runs = await _runs(db_session, ada, bob)
    routed = await client.get(f"/history/users/{ada.id}/job-runs", headers=admin)
    assert [item["id"] for item in routed.json()["job_runs"]] == newest(runs, 10)
    called = await client.post(
        "/mcp/call",
        headers=admin,
        json={"tool": "ops.latest_job_runs", "args": {"user_id": str(bob.id), "limit": 50}},
    )
    assert called.status_code == 200, called.text
    assert len(called.json()["result"]["job_runs"]) == 3


async def test_bad_arguments_are_a_clear_422(
    client: httpx.AsyncClient, ada_token: dict[str, str]
) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("ops_latest_job_runs", {"limit": 0}, "limit"),
        ("ops_latest_job_runs", {"limit": 51}, "limit"),
        ("ops_latest_job_runs", {"job_type": "backup"}, "job_type"),
        ("ops_latest_job_runs", {"status": "done"}, "status"),
        ("ops_latest_import_jobs", {"status": "finished"}, "status"),
        ("ops_latest_import_jobs", {"limit": 51}, "limit"),
        ("ops_sync_status", {"days": 7}, "unknown argument days"),
    ]
    for name, args, expected in cases:
        response = await client.post(
            "/mcp/call", headers=ada_token, json={"tool": name, "args": args}
        )
        assert response.status_code == 422, (name, args, response.text)
        assert expected in response.json()["error"]["message"], (name, args)
    rest = await client.get("/me/import-jobs", headers=ada_token, params={"limit": 51})
    assert rest.status_code == 422


async def test_import_jobs_show_counts_but_never_storage_paths(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    ada: User,
    bob: User,
    ada_token: dict[str, str],
) -> None:
    statuses = ["success", "partial", "error", "running", "pending", "cancelled"]
    jobs: list[ImportJob] = []
    for number in range(12):
        status = statuses[number % 6]
        created = BASE + timedelta(days=number)
        started = created + timedelta(minutes=1) if status != "pending" else None
        finished = created + timedelta(minutes=9) if status not in ("running", "pending") else None
        job = await add_import_job(
            db_session,
            ada.id,
            status=status,
            storage_path=f"{UPLOADS}/{ada.id}/{uuid.uuid4()}.zip",
            created_at=created,
            file_size_bytes=4000,
            bytes_done=1000 * (number % 5),
            format_detected="extended,account" if number % 2 else "extended",
            records_done=100 + number,
            records_ingested=90 + number,
            duplicates=7,
            skipped={"bad_timestamp": number, "not_an_object": 1},
            earliest_played_at=datetime(2015, 1, 1, tzinfo=UTC),
            latest_played_at=datetime(2025, 1, 1, tzinfo=UTC),
            started_at=started,
            finished_at=finished,
            error=LONG_ERROR if status == "error" else None,
        )
        jobs.append(job)
    for number in range(2):
        await add_import_job(db_session, bob.id, created_at=BASE + timedelta(days=40 + number))

    response = await client.get("/me/import-jobs", headers=ada_token)
    assert response.status_code == 200, response.text
    items = response.json()["import_jobs"]
    ordered = sorted(jobs, key=lambda job: job.created_at, reverse=True)
    assert [item["id"] for item in items] == [str(job.id) for job in ordered[:10]]
    for item, job in zip(items, ordered, strict=False):
        assert item["status"] == job.status
        assert item["file_name"] == "my_spotify_data.zip"
        assert item["formats_detected"] == (job.format_detected or "").split(",")
        assert item["records_done"] == job.records_done
        assert item["plays_inserted"] == job.records_ingested
        assert item["duplicates"] == 7
        assert item["skipped"] == job.skipped
        assert at(item["created_at"]) == job.created_at
        assert at(item["finished_at"]) == job.finished_at
        assert item["progress"]["fraction"] == job.bytes_done / 4000
        if job.status == "error":
            assert len(item["error"]) == 300
        else:
            assert item["error"] is None
    assert "storage_path" not in response.text
    assert_no_leaks(response)

    import_filters: list[dict[str, str | int]] = [
        {"status": "error"},
        {"status": "pending", "limit": 1},
        {"limit": 12},
    ]
    for params in import_filters:
        filtered = await client.get("/me/import-jobs", headers=ada_token, params=params)
        expected = [j for j in ordered if j.status == params.get("status", j.status)]
        assert [item["id"] for item in filtered.json()["import_jobs"]] == [
            str(job.id) for job in expected[: int(params.get("limit", 10))]
        ], params


async def test_sync_status_sums_up_connection_collector_and_stored_history(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    ada: User,
    bob: User,
    ada_token: dict[str, str],
) -> None:
    checkpoint = await db_session.get(SyncCheckpoint, ada.id)
    assert checkpoint is not None
    checkpoint.last_poll_started_at = BASE
    checkpoint.last_poll_completed_at = BASE + timedelta(seconds=3)
    checkpoint.latest_played_at = BASE - timedelta(minutes=5)
    checkpoint.next_run_at = BASE + timedelta(minutes=10)
    checkpoint.consecutive_failures = 2
    checkpoint.error = LONG_ERROR
    checkpoint.lease_owner = "lease-host-7:123/abc"
    checkpoint.lease_expires_at = datetime.now(UTC) + timedelta(minutes=2)
    song = await add_track(db_session, "Song", "Band")
    other = await add_track(db_session, "Other", "Band")
    await add_listens(db_session, ada.id, song, BASE, BASE + timedelta(hours=1))
    await add_listens(db_session, ada.id, song, BASE - timedelta(days=400), ms_played=5_000)
    await add_listens(
        db_session, ada.id, other, BASE + timedelta(days=2), ms_played=None, source="spotify_api"
    )
    await add_listens(
        db_session, bob.id, song, BASE - timedelta(days=900), BASE + timedelta(days=9)
    )
    for day in range(3):
        start = BASE + timedelta(days=day)
        await add_gap(db_session, ada.id, start, start + timedelta(hours=2))
    await add_gap(db_session, bob.id, BASE, BASE + timedelta(hours=1))
    raw = (
        await db_session.execute(
            text("SELECT played_at, ms_played, track_id FROM plays WHERE user_id = :u"),
            {"u": ada.id},
        )
    ).all()
    authorized = (
        await db_session.execute(
            text("SELECT authorized_at FROM spotify_tokens WHERE user_id = :u"), {"u": ada.id}
        )
    ).scalar_one()

    response = await client.get("/me/sync-status", headers=ada_token)
    assert response.status_code == 200, response.text
    body = response.json()
    spotify = body["spotify"]
    assert spotify["state"] == "expires_soon"
    assert at(spotify["refresh_token_expires_at"]) == authorized + REFRESH_TOKEN_LIFETIME
    assert 6.9 <= spotify["days_until_refresh_token_expiry"] <= 7.0
    collector = body["collector"]
    assert collector["status"] == "polling"
    assert collector["running_now"] is True
    assert at(collector["last_poll_completed_at"]) == BASE + timedelta(seconds=3)
    assert at(collector["latest_played_at"]) == BASE - timedelta(minutes=5)
    assert at(collector["next_run_at"]) == BASE + timedelta(minutes=10)
    assert collector["consecutive_failures"] == 2
    assert len(collector["error"]) == 300
    plays = [row for row in raw if row.ms_played is None or row.ms_played >= 30_000]
    assert body["history"] == {
        "rows": len(raw),
        "plays": len(plays),
        "skips": len(raw) - len(plays),
        "distinct_tracks": len({row.track_id for row in raw}),
        "first_played_at": min(r.played_at for r in raw).isoformat().replace("+00:00", "Z"),
        "last_played_at": max(r.played_at for r in raw).isoformat().replace("+00:00", "Z"),
        "recorded_gaps": 3,
    }
    assert_no_leaks(response)


async def test_sync_status_of_a_user_without_spotify_or_history(
    client: httpx.AsyncClient, db_session: AsyncSession, personal: dict[str, str]
) -> None:
    response = await client.get("/me/sync-status", headers=personal)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["spotify"] == {
        "state": "not_connected",
        "authorized_at": None,
        "refresh_token_expires_at": None,
        "days_until_refresh_token_expiry": None,
        "reason": None,
    }
    assert body["collector"] is None
    assert body["history"]["rows"] == 0
    assert body["history"]["first_played_at"] is None
    revoked = await add_user(db_session, "Revoked", connection="needs_reauth")
    headers = await token_headers(db_session, revoked.id)
    answer = await client.post(
        "/mcp/call",
        headers=headers,
        json={"tool": "ops_sync_status", "args": {}},
    )
    result = answer.json()["result"]
    assert result["spotify"]["state"] == "needs_reauth"
    assert result["spotify"]["reason"] == "refresh token revoked"
    assert result["collector"]["running_now"] is False
    bogus = await client.get("/me/sync-status", headers=personal, params={"bogus": 1})
    assert bogus.status_code == 422
