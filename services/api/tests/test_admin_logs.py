"""GET /admin/logs (filters, pagination) and POST /admin/maintenance/purge-logs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db.engine import db_now
from playlog.db.models import LogRecord
from playlog.testing.factories import add_log
from playlog.testing.http import asgi_client, walk_pages
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings


@pytest.fixture
def service() -> str:
    """A service name of this test only: records the api logs itself never match it."""
    return f"test-{uuid.uuid4().hex[:8]}"


async def messages(
    client: httpx.AsyncClient, admin: dict[str, str], service: str, **params: Any
) -> list[str]:
    response = await client.get("/admin/logs", headers=admin, params={"service": service, **params})
    assert response.status_code == 200, response.text
    return [item["message"] for item in response.json()["items"]]


async def test_pages_walk_newest_first(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str], service: str
) -> None:
    for n in range(5):
        await add_log(db_session, f"line {n}", service=service)
    await db_session.commit()

    items, pages = await walk_pages(client, "/admin/logs", admin, service=service, limit=2)

    assert pages == 3
    assert [item["message"] for item in items] == [f"line {n}" for n in range(4, -1, -1)]
    assert items[0]["service"] == service
    assert items[0]["logger"] == "tests"


async def test_level_is_a_minimum_severity(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str], service: str
) -> None:
    for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        await add_log(db_session, level.lower(), service=service, level=level)
    await db_session.commit()

    assert await messages(client, admin, service, level="WARNING") == [
        "critical",
        "error",
        "warning",
    ]
    assert await messages(client, admin, service, level="CRITICAL") == ["critical"]
    assert len(await messages(client, admin, service, level="DEBUG")) == 5


async def test_user_text_and_time_filters(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str], service: str
) -> None:
    user_id = uuid.uuid4()
    now = await db_now(db_session)
    await add_log(db_session, "Polled 3 plays", service=service, user_id=user_id)
    await add_log(db_session, "polled 100% of the window", service=service)
    await add_log(db_session, "polled 100 of them", service=service)
    await add_log(db_session, "took 5_s", service=service)
    await add_log(db_session, "path C:\\music", service=service)
    await add_log(db_session, "old news", service=service, timestamp=now - timedelta(days=2))
    await db_session.commit()

    assert await messages(client, admin, service, user_id=str(user_id)) == ["Polled 3 plays"]
    assert await messages(client, admin, service, q="POLLED") == [
        "polled 100 of them",
        "polled 100% of the window",
        "Polled 3 plays",
    ]
    # %, _ and \\ are matched literally, not as LIKE wildcards.
    assert await messages(client, admin, service, q="100%") == ["polled 100% of the window"]
    assert await messages(client, admin, service, q="5_s") == ["took 5_s"]
    assert await messages(client, admin, service, q="C:\\m") == ["path C:\\music"]
    since = (now - timedelta(days=1)).isoformat()
    assert "old news" not in await messages(client, admin, service, since=since)
    assert len(await messages(client, admin, service, since=since)) == 5


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2025-01-01T00:00:00", "timezone"),
        # Read as Unix time, 20261122 would be a moment in August 1970.
        (
            "20261122",
            "ISO 8601 date-time with a UTC offset, such as 2026-11-22T08:00:00Z, not a number",
        ),
        ("1763798400", "not a number"),
        ("1.7e9", "not a number"),
    ],
)
async def test_a_since_that_is_no_instant_is_422_with_a_clear_message(
    client: httpx.AsyncClient, admin: dict[str, str], since: str, expected: str
) -> None:
    response = await client.get("/admin/logs", headers=admin, params={"since": since})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert message.startswith("since: ")
    assert expected in message


async def test_a_service_name_that_is_no_name_is_422(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # A NUL reached the database and failed there: a 500.
    for service in ("api\u0000", "api collector", "../api"):
        response = await client.get("/admin/logs", headers=admin, params={"service": service})
        assert response.status_code == 422, service
        assert response.json()["error"]["details"][0]["location"] == ["query", "service"]


async def test_purge_deletes_only_older_records(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str], service: str
) -> None:
    now = await db_now(db_session)
    for days in (40, 31, 29, 0):
        await add_log(
            db_session, f"{days} days old", service=service, timestamp=now - timedelta(days=days)
        )
    await db_session.commit()

    response = await client.post(
        "/admin/maintenance/purge-logs", headers=admin, params={"older_than_days": 30}
    )

    assert response.status_code == 200
    assert response.json()["older_than_days"] == 30
    assert response.json()["deleted"] >= 2
    assert await messages(client, admin, service) == ["0 days old", "29 days old"]


async def test_purge_defaults_to_the_retention_setting(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    db_session: AsyncSession,
    admin: dict[str, str],
    service: str,
) -> None:
    now = await db_now(db_session)
    for days in (10, 3):
        await add_log(
            db_session, f"{days} days old", service=service, timestamp=now - timedelta(days=days)
        )
    await db_session.commit()
    settings = api_settings.model_copy(update={"log_retention_days": 5})

    async with asgi_client(create_app(settings, sessionmaker=db_sessionmaker)) as client:
        response = await client.post("/admin/maintenance/purge-logs", headers=admin)

    assert response.status_code == 200
    assert response.json()["older_than_days"] == 5
    remaining = await db_session.scalars(
        select(LogRecord.message).where(LogRecord.service == service)
    )
    assert list(remaining) == ["3 days old"]
