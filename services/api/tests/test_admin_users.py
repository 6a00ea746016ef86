"""Admin user detail (token status, recent work, plays) and disconnect."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.crypto import TokenCipher
from playlog.db.models import SpotifyToken, SyncCheckpoint, User
from playlog.spotify.models import TokenResponse
from playlog.spotify.tokens import REFRESH_TOKEN_LIFETIME, store_grant
from playlog.testing.factories import add_gap, add_import_job, add_job_run, add_plays, add_user
from playlog.testing.history import add_listens, add_track

ACCESS, REFRESH = "at-SECRET-4567", "rt-SECRET-1234"


async def connected_user(
    session: AsyncSession, encryption_key: str, authorized_days_ago: float
) -> User:
    user = User(display_name="Ada", spotify_user_id=f"sp-{uuid.uuid4().hex[:8]}")
    session.add(user)
    await session.flush()
    session.add(SyncCheckpoint(user_id=user.id, status="polling"))
    grant = TokenResponse(
        access_token=ACCESS, token_type="Bearer", expires_in=3600, refresh_token=REFRESH
    )
    authorized = datetime.now(UTC) - timedelta(days=authorized_days_ago)
    await store_grant(session, TokenCipher(encryption_key), user.id, grant, authorized)
    await session.commit()
    return user


async def test_detail_shows_token_status_and_expiry(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    encryption_key: str,
    admin: dict[str, str],
) -> None:
    user = await connected_user(db_session, encryption_key, authorized_days_ago=175)
    response = await client.get(f"/admin/users/{user.id}", headers=admin)
    assert ACCESS not in response.text
    assert REFRESH not in response.text
    body = response.json()
    assert body["id"] == str(user.id)
    assert body["spotify"]["state"] == "expires_soon"
    expires = datetime.fromisoformat(body["spotify"]["refresh_token_expires_at"])
    authorized = datetime.fromisoformat(body["spotify"]["authorized_at"])
    assert expires - authorized == REFRESH_TOKEN_LIFETIME
    assert body["checkpoint"]["status"] == "polling"


async def test_disconnect_forgets_tokens_and_stops_polling(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    encryption_key: str,
    admin: dict[str, str],
) -> None:
    user_id = (await connected_user(db_session, encryption_key, authorized_days_ago=1)).id
    response = await client.post(f"/admin/users/{user_id}/disconnect", headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert body["spotify"]["state"] == "not_connected"
    assert body["checkpoint"]["status"] == "needs_reauth"
    db_session.expire_all()
    assert await db_session.get(SpotifyToken, user_id) is None
    assert await db_session.get(User, user_id) is not None  # history and user stay


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    missing = await client.get(f"/admin/users/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    malformed = await client.post("/admin/users/not-a-uuid/disconnect", headers=admin)
    assert malformed.status_code == 422


async def test_user_routes_need_the_admin(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/admin/users/{uuid.uuid4()}")
    assert response.status_code == 401


async def test_detail_lists_recent_work_gaps_and_counts_plays(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await add_user(db_session)
    other = await add_user(db_session, "Bob")
    base = datetime(2025, 3, 1, tzinfo=UTC)
    for hour in range(12):
        await add_job_run(db_session, user.id, started_at=base + timedelta(hours=hour))
    for day in range(11):
        await add_import_job(db_session, user.id, created_at=base + timedelta(days=day))
    for day in range(22):
        start = base + timedelta(days=day)
        await add_gap(db_session, user.id, start, start + timedelta(hours=1))
    await add_plays(db_session, user.id, 3)
    await add_plays(db_session, other.id, 5)
    await add_job_run(db_session, other.id, started_at=base + timedelta(days=30))
    await db_session.commit()

    body = (await client.get(f"/admin/users/{user.id}", headers=admin)).json()

    assert body["plays_total"] == 3
    jobs = [datetime.fromisoformat(job["started_at"]) for job in body["recent_jobs"]]
    assert jobs == [base + timedelta(hours=hour) for hour in range(11, 1, -1)]
    assert {job["user_id"] for job in body["recent_jobs"]} == {str(user.id)}
    imports = [datetime.fromisoformat(job["created_at"]) for job in body["recent_imports"]]
    assert imports == [base + timedelta(days=day) for day in range(10, 0, -1)]
    assert body["recent_imports"][0]["original_filename"] == "my_spotify_data.zip"
    gaps = [datetime.fromisoformat(gap["gap_from"]) for gap in body["gaps"]]
    assert gaps == [base + timedelta(days=day) for day in range(21, 1, -1)]
    assert body["checkpoint"]["consecutive_failures"] == 0


async def test_an_admin_changes_a_users_time_zone(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await add_user(db_session, "Zoned", authorized_days_ago=None, checkpoint=None)
    changed = await client.patch(
        f"/admin/users/{user.id}", headers=admin, json={"timezone": "America/New_York"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["timezone"] == "America/New_York"
    await db_session.refresh(user)
    assert user.timezone == "America/New_York"
    # The hour totals follow the zone's hours: +05:30 starts them at minute 30.
    song = await add_track(db_session, "Song", "Artist")
    await add_listens(db_session, user.id, song, datetime(2026, 5, 1, 12, 10, tzinfo=UTC))
    await db_session.commit()
    kolkata = await client.patch(
        f"/admin/users/{user.id}", headers=admin, json={"timezone": "Asia/Kolkata"}
    )
    assert kolkata.status_code == 200, kolkata.text
    hours = await db_session.scalars(
        text("SELECT hour FROM play_hours WHERE user_id = :u"), {"u": user.id}
    )
    assert hours.all() == [datetime(2026, 5, 1, 11, 30, tzinfo=UTC)]
    await client.patch(
        f"/admin/users/{user.id}", headers=admin, json={"timezone": "America/New_York"}
    )
    for body, message in (
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"timezone": 5}, "timezone"),
        ({"display_name": ""}, "name must not be empty"),
        ({"display_name": "   "}, "name must not be empty"),
        ({"display_name": "x" * 201}, "at most 200 characters"),
        # A NUL cannot be stored (it was a 500); a line break would break the listings.
        ({"display_name": "Ada\u0000"}, "must not contain control characters"),
        ({"display_name": "Ada\nLovelace"}, "must not contain control characters"),
        ({"colour": "red"}, "colour"),
    ):
        refused = await client.patch(f"/admin/users/{user.id}", headers=admin, json=body)
        assert refused.status_code == 422, body
        assert message in refused.text
    await db_session.refresh(user)
    assert user.timezone == "America/New_York"
    renamed = await client.patch(
        f"/admin/users/{user.id}", headers=admin, json={"display_name": "  Zoned Out "}
    )
    assert renamed.json()["display_name"] == "Zoned Out"
    missing = await client.patch(f"/admin/users/{uuid.uuid4()}", headers=admin, json={})
    assert missing.status_code == 404
