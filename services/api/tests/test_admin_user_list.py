"""GET /admin/users: every user with connection and checkpoint, keyset-paginated."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.testing.factories import add_user
from playlog.testing.http import walk_pages


async def test_list_shows_connection_and_checkpoint(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    polled = datetime(2025, 5, 1, 12, tzinfo=UTC)
    ok = await add_user(db_session, "Ok", checkpoint="polling", latest_played_at=polled)
    revoked = await add_user(db_session, "Revoked", connection="needs_reauth")
    bare = await add_user(db_session, "Bare", authorized_days_ago=None, checkpoint=None)
    await db_session.commit()

    items, _ = await walk_pages(client, "/admin/users", admin, limit=200)

    by_id = {item["id"]: item for item in items}
    assert by_id[str(ok.id)]["spotify"] == "ok"
    assert by_id[str(ok.id)]["sync_status"] == "polling"
    assert datetime.fromisoformat(by_id[str(ok.id)]["latest_played_at"]) == polled
    assert by_id[str(ok.id)]["spotify_user_id"] == ok.spotify_user_id
    assert by_id[str(revoked.id)]["spotify"] == "needs_reauth"
    assert by_id[str(bare.id)]["spotify"] == "not_connected"
    assert by_id[str(bare.id)]["sync_status"] is None


async def test_pages_walk_every_user_once_in_creation_order(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    # Three users share one created_at (the id breaks the tie), two are older.
    older = datetime.now(UTC) - timedelta(days=3)
    mine = [
        await add_user(db_session, "Old", created_at=older),
        await add_user(db_session, "Older", created_at=older - timedelta(days=1)),
    ]
    mine += [await add_user(db_session, f"Same {n}") for n in range(3)]
    await db_session.commit()

    items, pages = await walk_pages(client, "/admin/users", admin, limit=2)

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    assert pages >= 3
    created = [(datetime.fromisoformat(item["created_at"]), item["id"]) for item in items]
    assert created == sorted(created, key=lambda key: (key[0], uuid.UUID(key[1])))
    expected = sorted(mine, key=lambda user: (user.created_at, user.id))
    assert [i for i in ids if i in {str(user.id) for user in mine}] == [
        str(user.id) for user in expected
    ]


async def test_last_page_has_no_cursor(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    await add_user(db_session)
    await db_session.commit()
    body = (await client.get("/admin/users", headers=admin, params={"limit": 200})).json()
    assert body["next_cursor"] is None
    assert len(body["items"]) >= 1


def encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "***",
        encoded(b"not json"),
        encoded(b'{"a": 1}'),
        encoded(b'["2025-01-01T00:00:00+00:00"]'),
        encoded(b'["yesterday", "6c0a3e0e-55b8-4b55-9d0e-8f1d7e5f4a10"]'),
        encoded(b'["2025-01-01T00:00:00", "6c0a3e0e-55b8-4b55-9d0e-8f1d7e5f4a10"]'),  # naive
        encoded(b'["2025-01-01T00:00:00Z", "6c0a3e0e"]'),
        encoded(b"[" * 300 + b"]" * 300),
        encoded(b'["2025-01-01T00:00:00Z", "6c0a3e0e-55b8-4b55-9d0e-8f1d7e5f4a10"]') + "$",
        encoded(b"[17]"),
        "A" * 2000,
    ],
)
async def test_malformed_cursor_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], cursor: str
) -> None:
    response = await client.get("/admin/users", headers=admin, params={"cursor": cursor})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "cursor" in error["message"]
