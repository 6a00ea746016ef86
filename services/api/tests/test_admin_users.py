"""Admin user detail (token status) and disconnect."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.crypto import TokenCipher
from playlog.db.models import SpotifyToken, SyncCheckpoint, User
from playlog.spotify.models import TokenResponse
from playlog.spotify.tokens import REFRESH_TOKEN_LIFETIME, store_grant

ACCESS, REFRESH = "at-SECRET-4567", "rt-SECRET-1234"


@pytest.fixture
def admin(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


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
