from __future__ import annotations

import httpx

from playlog.db.engine import create_engine, create_sessionmaker
from playlog.db.migrate import head_revision
from playlog.testing.http import asgi_client
from playlog.testing.plugin import DatabaseFactory
from playlog.testing.processes import free_port
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings


async def test_healthz_answers_without_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_at_the_migration_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["migration_current"] == body["migration_head"] == head_revision()


async def test_readyz_refuses_an_unmigrated_database(
    api_settings: ApiSettings, database_factory: DatabaseFactory
) -> None:
    engine = create_engine(await database_factory(), pool_size=1)
    try:
        app = create_app(api_settings, sessionmaker=create_sessionmaker(engine))
        async with asgi_client(app) as client:
            response = await client.get("/readyz")
    finally:
        await engine.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["migration_current"] is None
    assert "playlog db upgrade" in body["reason"]


async def test_readyz_reports_an_unreachable_database(api_settings: ApiSettings) -> None:
    unreachable = api_settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://x@127.0.0.1:{free_port()}/none"}
    )
    async with asgi_client(create_app(unreachable)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
