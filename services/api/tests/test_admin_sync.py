"""Sync controls: pause, resume, sync now, initial sync; NOTIFY reaches a listener."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from playlog.db.engine import create_sessionmaker, db_now
from playlog.db.models import SyncCheckpoint, User
from playlog.db.models.sync import SYNC_CHANNEL
from playlog.testing.factories import add_user
from playlog.testing.http import asgi_client
from playlog.testing.notify import notifications
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings

LATER = datetime(2030, 1, 1, tzinfo=UTC)


async def checkpoint_of(session: AsyncSession, user_id: uuid.UUID) -> SyncCheckpoint | None:
    return await session.get(SyncCheckpoint, user_id, populate_existing=True)


async def post(
    client: httpx.AsyncClient, admin: dict[str, str], user: User, action: str
) -> httpx.Response:
    return await client.post(f"/admin/users/{user.id}/{action}", headers=admin)


async def test_pause_keeps_progress_and_creates_a_missing_checkpoint(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    polled = datetime(2025, 5, 1, tzinfo=UTC)
    user = await add_user(db_session, checkpoint="polling", latest_played_at=polled)
    bare = await add_user(db_session, "Bare", checkpoint=None)
    await db_session.commit()

    response = await post(client, admin, user, "pause")
    assert response.status_code == 200
    body = response.json()
    assert body["checkpoint"]["status"] == "paused"
    assert datetime.fromisoformat(body["checkpoint"]["latest_played_at"]) == polled
    assert body["spotify"] == "ok"

    assert (await post(client, admin, bare, "pause")).json()["checkpoint"]["status"] == "paused"
    created = await checkpoint_of(db_session, bare.id)
    assert created is not None
    assert created.status == "paused"


async def test_paused_user_cannot_sync_until_resumed(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await add_user(db_session, checkpoint="error", consecutive_failures=4, error="boom")
    await db_session.commit()
    await post(client, admin, user, "pause")

    for action in ("sync-now", "initial-sync"):
        refused = await post(client, admin, user, action)
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "conflict"
        assert "resume first" in refused.json()["error"]["message"]
    still = await checkpoint_of(db_session, user.id)
    assert still is not None
    assert still.status == "paused"
    assert still.sync_requested_at is None

    resumed = await post(client, admin, user, "resume")
    assert resumed.status_code == 200
    checkpoint = resumed.json()["checkpoint"]
    assert checkpoint["status"] == "idle"
    assert checkpoint["consecutive_failures"] == 0
    assert checkpoint["error"] is None
    assert datetime.fromisoformat(checkpoint["next_run_at"]) == await db_now(db_session)
    assert (await post(client, admin, user, "sync-now")).status_code == 202


async def test_resuming_a_user_that_is_not_paused_changes_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await add_user(db_session, checkpoint="error", next_run_at=LATER, error="boom")
    bare = await add_user(db_session, "Bare", checkpoint=None)
    await db_session.commit()

    response = await post(client, admin, user, "resume")
    assert response.status_code == 200
    checkpoint = response.json()["checkpoint"]
    assert checkpoint["status"] == "error"
    assert checkpoint["error"] == "boom"
    assert datetime.fromisoformat(checkpoint["next_run_at"]) == LATER

    nothing = await post(client, admin, bare, "resume")
    assert nothing.status_code == 200
    assert nothing.json()["checkpoint"] is None
    assert await checkpoint_of(db_session, bare.id) is None


@pytest.mark.parametrize(
    ("setup", "spotify"),
    [
        ({"connection": "needs_reauth"}, "needs_reauth"),
        ({"authorized_days_ago": 200}, "needs_reauth"),  # refresh token expired
        ({"authorized_days_ago": None}, "not_connected"),
    ],
)
async def test_resume_without_a_usable_token_needs_reauth(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    admin: dict[str, str],
    setup: dict[str, Any],
    spotify: str,
) -> None:
    user = await add_user(db_session, checkpoint="paused", **setup)
    await db_session.commit()
    body = (await post(client, admin, user, "resume")).json()
    assert body["spotify"] == spotify
    assert body["checkpoint"]["status"] == "needs_reauth"
    assert body["checkpoint"]["error"]


async def test_sync_now_makes_the_user_due(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    # Expiring soon still works; a stale needs_reauth must not keep the collector away.
    user = await add_user(db_session, authorized_days_ago=175, checkpoint="needs_reauth")
    bare = await add_user(db_session, "Bare", checkpoint=None)
    await db_session.commit()
    now = await db_now(db_session)

    response = await post(client, admin, user, "sync-now")
    assert response.status_code == 202
    body = response.json()
    assert body["spotify"] == "expires_soon"
    assert body["checkpoint"]["status"] == "idle"
    assert datetime.fromisoformat(body["checkpoint"]["next_run_at"]) == now
    assert datetime.fromisoformat(body["checkpoint"]["sync_requested_at"]) == now

    assert (await post(client, admin, bare, "sync-now")).status_code == 202
    created = await checkpoint_of(db_session, bare.id)
    assert created is not None
    assert (created.status, created.next_run_at, created.sync_requested_at) == ("idle", now, now)


@pytest.mark.parametrize("action", ["sync-now", "initial-sync"])
@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ({"connection": "needs_reauth"}, "spotify_reauth_required"),
        ({"authorized_days_ago": 183}, "spotify_reauth_required"),
        ({"authorized_days_ago": None}, "conflict"),
    ],
)
async def test_sync_needs_a_usable_token(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    admin: dict[str, str],
    action: str,
    setup: dict[str, Any],
    code: str,
) -> None:
    user = await add_user(db_session, checkpoint="idle", next_run_at=LATER, **setup)
    await db_session.commit()
    response = await post(client, admin, user, action)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == code
    checkpoint = await checkpoint_of(db_session, user.id)
    assert checkpoint is not None
    assert checkpoint.next_run_at == LATER


async def test_initial_sync_forgets_its_progress_only(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    done = datetime(2025, 4, 1, tzinfo=UTC)
    user = await add_user(
        db_session,
        checkpoint="polling",
        initial_sync_started_at=done - timedelta(hours=1),
        initial_sync_completed_at=done,
        initial_sync_cursor_ms=1_700_000_000_000,
        initial_sync_earliest_played_at=done - timedelta(days=20),
        latest_played_at=done,
    )
    await db_session.commit()

    response = await post(client, admin, user, "initial-sync")
    assert response.status_code == 202
    checkpoint = await checkpoint_of(db_session, user.id)
    assert checkpoint is not None
    assert checkpoint.initial_sync_started_at is None
    assert checkpoint.initial_sync_completed_at is None
    assert checkpoint.initial_sync_cursor_ms is None
    assert checkpoint.initial_sync_earliest_played_at is None
    assert checkpoint.latest_played_at == done
    assert checkpoint.sync_requested_at == await db_now(db_session)


# --- NOTIFY needs real commits and a second connection ------------------------------


@pytest_asyncio.fixture
async def listener(database_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """Payloads of NOTIFY on the sync channel."""
    async with notifications(database_url, SYNC_CHANNEL) as received:
        yield received


async def test_sync_requests_notify_the_collectors_on_commit(
    api_settings: ApiSettings,
    db_engine: AsyncEngine,
    admin: dict[str, str],
    listener: asyncio.Queue[str],
) -> None:
    committed = create_sessionmaker(db_engine)
    async with committed.begin() as session:
        user = await add_user(session, "Notified", checkpoint="idle")
    try:
        async with asgi_client(create_app(api_settings, sessionmaker=committed)) as client:
            for action in ("sync-now", "initial-sync", "pause", "resume"):
                assert (await post(client, admin, user, action)).is_success
            # A refused request sends nothing: its transaction rolls back.
            await post(client, admin, user, "pause")
            assert (await post(client, admin, user, "sync-now")).status_code == 409
        payloads = [await asyncio.wait_for(listener.get(), timeout=5) for _ in range(3)]
        assert payloads == [str(user.id)] * 3
        await asyncio.sleep(0.2)
        assert listener.empty()  # pause and the refused sync-now did not notify
    finally:
        async with committed.begin() as session:
            await session.execute(delete(User).where(User.id == user.id))
