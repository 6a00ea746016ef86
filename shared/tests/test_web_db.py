"""The request session commits when the endpoint returns and rolls back when it raises."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db.models import User
from playlog.errors import Conflict
from playlog.web.db import DbSession
from playlog.web.errors import install_error_handlers


def _app(sessionmaker: async_sessionmaker[AsyncSession]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.sessionmaker = sessionmaker

    @app.post("/users")
    async def add_user(name: str, session: DbSession, fail: bool = False) -> dict[str, str]:
        user = User(display_name=name)
        session.add(user)
        await session.flush()
        if fail:
            raise Conflict("refused after writing")
        return {"id": str(user.id)}

    return app


async def _names(session: AsyncSession, *names: str) -> set[str | None]:
    rows = await session.scalars(select(User.display_name).where(User.display_name.in_(names)))
    return set(rows)


async def test_commit_on_success_and_rollback_on_error(
    db_sessionmaker: async_sessionmaker[AsyncSession], db_session: AsyncSession
) -> None:
    kept, dropped = f"kept-{uuid.uuid4().hex}", f"dropped-{uuid.uuid4().hex}"
    transport = httpx.ASGITransport(app=_app(db_sessionmaker))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        ok = await client.post("/users", params={"name": kept})
        refused = await client.post("/users", params={"name": dropped, "fail": "true"})
    assert ok.status_code == 200
    assert refused.status_code == 409
    assert await _names(db_session, kept, dropped) == {kept}
