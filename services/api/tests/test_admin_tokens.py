"""Admin API for personal access tokens: the token is shown once, only its hash is kept."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.access_tokens import (
    MAX_ACTIVE_TOKENS,
    authenticate_token,
    create_token,
    hash_token,
    list_tokens,
)
from playlog.db.engine import db_now
from playlog.db.models import User
from playlog.testing.factories import add_user


async def committed_user(session: AsyncSession, name: str = "Ada") -> User:
    user = await add_user(session, name, authorized_days_ago=None, checkpoint=None)
    await session.commit()
    return user


def tokens_url(user_id: uuid.UUID | str) -> str:
    return f"/admin/users/{user_id}/tokens"


async def test_create_list_revoke(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await committed_user(db_session)

    created = await client.post(tokens_url(user.id), json={"name": "Claude"}, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "name", "prefix", "created_at", "expires_at", "token"}
    secret = body["token"]
    assert secret.startswith("plg_")
    assert body["prefix"] == secret[:12]
    assert (body["name"], body["expires_at"]) == ("Claude", None)
    found = await authenticate_token(db_session, secret)
    assert found is not None
    assert (str(found.id), found.user_id) == (body["id"], user.id)
    await db_session.commit()

    listed = await client.get(tokens_url(user.id), headers=admin)
    assert listed.status_code == 200
    assert secret not in listed.text
    assert hash_token(secret) not in listed.text
    [view] = listed.json()
    assert set(view) == {
        "id",
        "name",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "active",
    }
    assert (view["id"], view["prefix"], view["active"]) == (body["id"], body["prefix"], True)
    assert view["last_used_at"] is not None
    assert view["revoked_at"] is None

    revoked = await client.delete(f"{tokens_url(user.id)}/{body['id']}", headers=admin)
    assert revoked.status_code == 204
    assert revoked.content == b""
    assert await authenticate_token(db_session, secret) is None
    [view] = (await client.get(tokens_url(user.id), headers=admin)).json()
    assert view["active"] is False
    assert view["revoked_at"] is not None
    again = await client.delete(f"{tokens_url(user.id)}/{body['id']}", headers=admin)
    assert again.status_code == 204
    [view_again] = (await client.get(tokens_url(user.id), headers=admin)).json()
    assert view_again["revoked_at"] == view["revoked_at"]


async def test_expiry_is_kept_and_shown(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await committed_user(db_session)
    expires = (await db_now(db_session) + timedelta(days=30)).isoformat()
    body = {"name": "for a month", "expires_at": expires}
    created = (await client.post(tokens_url(user.id), json=body, headers=admin)).json()
    assert datetime.fromisoformat(created["expires_at"]) == datetime.fromisoformat(expires)
    [view] = (await client.get(tokens_url(user.id), headers=admin)).json()
    assert datetime.fromisoformat(view["expires_at"]) == datetime.fromisoformat(expires)
    assert view["active"] is True
    assert view["last_used_at"] is None


async def test_unknown_users_and_tokens_are_404(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    ada, bob = await committed_user(db_session), await committed_user(db_session, "Bob")
    missing = uuid.uuid4()
    issued = await create_token(db_session, ada.id, "ada's")
    await db_session.commit()

    answers = [
        await client.get(tokens_url(missing), headers=admin),
        await client.post(tokens_url(missing), json={"name": "t"}, headers=admin),
        await client.delete(f"{tokens_url(missing)}/{issued.token.id}", headers=admin),
        await client.delete(f"{tokens_url(ada.id)}/{uuid.uuid4()}", headers=admin),
        await client.delete(f"{tokens_url(bob.id)}/{issued.token.id}", headers=admin),
    ]
    for response in answers:
        assert response.status_code == 404, response.request.url
        assert response.json()["error"]["code"] == "not_found"
    assert str(missing) in answers[0].json()["error"]["message"]
    assert await authenticate_token(db_session, issued.secret) is not None
    assert (await client.get(tokens_url(bob.id), headers=admin)).json() == []


async def test_token_routes_need_the_admin(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    user = await committed_user(db_session)
    bearer = {"Authorization": "Bearer " + (await create_token(db_session, user.id, "t")).secret}
    await db_session.commit()
    # No credentials: 401; a personal access token is not an admin credential: 403.
    for headers, status in (({}, 401), (bearer, 403)):
        responses = [
            await client.get(tokens_url(user.id), headers=headers),
            await client.post(tokens_url(user.id), json={"name": "t"}, headers=headers),
            await client.delete(f"{tokens_url(user.id)}/{uuid.uuid4()}", headers=headers),
        ]
        assert [response.status_code for response in responses] == [status] * 3
    assert [row.token.name for row in await list_tokens(db_session, user.id)] == ["t"]


BAD_BODIES: list[Any] = [
    {},
    {"name": 123},
    {"name": None},
    {"name": ["a"]},
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 101},
    {"name": "t", "expires_at": "2099-01-01T00:00:00"},
    {"name": "t", "expires_at": "tomorrow"},
    {"name": "t", "expires_at": 12},
    # Unix time (2100-01-01) is no ISO 8601 date-time: a number is refused, not guessed at.
    {"name": "t", "expires_at": 4102444800},
    {"name": "t", "expires_at": "4102444800"},
    {"name": "t", "expires": "2099-01-01T00:00:00Z"},
    {"name": "t", "expires_at": "2000-01-01T00:00:00Z"},
    {"name": "t", "expires_at": "9999-12-31T23:59:59-14:00"},  # the year 10000 in UTC
    {"name": "t", "expires_at": "9999-01-01T00:00:00Z"},
    {"name": "two\nlines"},
    ["name"],
    "name",
]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_bodies_are_422(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str], body: Any
) -> None:
    user = await committed_user(db_session)
    response = await client.post(tokens_url(user.id), json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert (await client.get(tokens_url(user.id), headers=admin)).json() == []


async def test_a_name_of_100_characters_is_fine(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await committed_user(db_session)
    response = await client.post(tokens_url(user.id), json={"name": "x" * 100}, headers=admin)
    assert response.status_code == 201
    assert response.json()["name"] == "x" * 100


async def test_the_cap_is_409(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await committed_user(db_session)
    for n in range(MAX_ACTIVE_TOKENS):
        await create_token(db_session, user.id, f"t{n}")
    await db_session.commit()
    response = await client.post(tokens_url(user.id), json={"name": "more"}, headers=admin)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "revoke one" in response.json()["error"]["message"]
