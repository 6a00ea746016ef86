"""The api application factory. Resources are built in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog import __version__
from playlog.crypto import TokenCipher
from playlog.db.engine import create_engine, create_sessionmaker
from playlog.web.admin_auth import AdminAuthenticator
from playlog.web.errors import install_error_handlers
from playlog_api.admin.router import router as admin_router
from playlog_api.health.router import router as health_router
from playlog_api.settings import ApiSettings


def create_app(
    settings: ApiSettings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> FastAPI:
    """Build the api. Pass ``sessionmaker`` to reuse a caller's database (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if sessionmaker is not None:
            app.state.sessionmaker = sessionmaker
            yield
            return
        engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            echo=settings.database_echo,
        )
        app.state.sessionmaker = create_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="Playlog API", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.admin_auth = AdminAuthenticator(settings)
    app.state.cipher = TokenCipher(settings.token_encryption_key.get_secret_value())
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(admin_router)
    return app
