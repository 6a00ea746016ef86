"""Every api request carries a request id: in its answer and in the log rows it causes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.db.engine import create_engine, create_sessionmaker
from playlog.db.models import LogRecord as LogRow
from playlog.dblog import database_logging
from playlog.testing.processes import free_port
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest_asyncio.fixture
async def log_sessionmaker(
    db_engine: AsyncEngine,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Commits for real (the log writer's rows); removes the api rows a test added."""
    sessionmaker = create_sessionmaker(db_engine)
    async with sessionmaker() as session:
        last_id = await session.scalar(select(func.coalesce(func.max(LogRow.id), 0)))
    yield sessionmaker
    async with sessionmaker.begin() as session:
        await session.execute(delete(LogRow).where(LogRow.service == "api", LogRow.id > last_id))


@asynccontextmanager
async def api_logging_to(
    settings: ApiSettings, log_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The api on an unreachable database (so /readyz logs a warning), logs stored for real.

    Ending the block ends the lifespan, which flushes the log rows.
    """
    unreachable = create_engine(f"postgresql://playlog@127.0.0.1:{free_port()}/playlog")
    app = create_app(settings, sessionmaker=create_sessionmaker(unreachable))
    _add_failing_route(app)
    try:
        async with (
            database_logging("api", settings, log_sessionmaker),
            LifespanManager(app) as manager,
        ):
            # A 500 is an answer here, not an exception raised into the test.
            transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client
    finally:
        await unreachable.dispose()


def _add_failing_route(app: FastAPI) -> None:
    @app.get("/test-only/fail")
    async def fail() -> None:
        raise RuntimeError("boom")


async def _rows_for(
    sessionmaker: async_sessionmaker[AsyncSession], request_id: str
) -> list[LogRow]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(LogRow)
            .where(LogRow.context["request_id"].astext == request_id)
            .order_by(LogRow.id)
        )
        return list(rows)


async def test_log_rows_carry_the_request_id_of_the_answer(
    api_settings: ApiSettings, log_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with api_logging_to(api_settings, log_sessionmaker) as client:
        generated = await client.get("/readyz")
        kept = await client.get("/readyz", headers={"X-Request-ID": "proxy-id.1_2-3"})

    assert generated.status_code == 503
    request_id = generated.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(request_id)
    (row,) = await _rows_for(log_sessionmaker, request_id)
    assert (row.service, row.level, row.logger) == ("api", "WARNING", "playlog_api.health.router")
    assert row.message.startswith("readiness: database unreachable")
    assert row.context == {"request_id": request_id}

    assert kept.headers["x-request-id"] == "proxy-id.1_2-3"
    assert len(await _rows_for(log_sessionmaker, "proxy-id.1_2-3")) == 1


async def test_unhandled_error_is_logged_and_answered_with_the_request_id(
    api_settings: ApiSettings, log_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with api_logging_to(api_settings, log_sessionmaker) as client:
        response = await client.get("/test-only/fail")

    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    (row,) = await _rows_for(log_sessionmaker, request_id)
    assert (row.level, row.message) == ("ERROR", "unhandled error on GET /test-only/fail")
    assert "RuntimeError: boom" in row.context["exception"]


async def test_invalid_incoming_request_ids_are_replaced(client: httpx.AsyncClient) -> None:
    for sent in ("has spaces", "x" * 65, "semi;colon", ""):
        response = await client.get("/healthz", headers={"X-Request-ID": sent})
        assert response.status_code == 200
        assert GENERATED_ID.fullmatch(response.headers["x-request-id"]), sent

    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
