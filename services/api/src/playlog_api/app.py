"""The api application factory. Resources are built in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog import __version__
from playlog.crypto import TokenCipher
from playlog.db.engine import create_engine, create_sessionmaker
from playlog.dblog import database_logging
from playlog.spotify.client import SpotifyClient
from playlog.web.admin_auth import AdminAuthenticator
from playlog.web.body_limit import BodyLimitMiddleware
from playlog.web.errors import install_error_handlers
from playlog.web.request_id import RequestIdMiddleware
from playlog_api import oauth
from playlog_api.admin.imports import UPLOAD_PATH
from playlog_api.admin.router import router as admin_router
from playlog_api.auth.router import router as auth_router
from playlog_api.health.router import router as health_router
from playlog_api.settings import ApiSettings
from playlog_api.tools import mcp as tools_mcp
from playlog_api.tools import rest as tools_rest
from playlog_api.tools.registry import aside_permits


def create_app(
    settings: ApiSettings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    spotify_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the api. Tests pass their own ``sessionmaker`` and a Spotify transport.

    With its own engine the api also stores log records in the database. A test
    ``sessionmaker`` is bound to one rolled-back connection that a log writer must not
    share with requests, so tests that check stored logs run ``database_logging``
    themselves.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if sessionmaker is not None:
                app.state.sessionmaker = sessionmaker
            else:
                engine = create_engine(
                    settings.database_url,
                    pool_size=settings.database_pool_size,
                    echo=settings.database_echo,
                )
                stack.push_async_callback(engine.dispose)
                app.state.sessionmaker = create_sessionmaker(engine)
                await stack.enter_async_context(
                    database_logging("api", settings, app.state.sessionmaker)
                )
            app.state.aside_permits = aside_permits(app.state.sessionmaker)
            app.state.spotify = None
            if settings.spotify_configured:
                http = httpx.AsyncClient(timeout=10.0, transport=spotify_transport)
                stack.push_async_callback(http.aclose)
                app.state.spotify = SpotifyClient.from_settings(settings, http)
            await stack.enter_async_context(mcp_manager.run())
            yield

    app = FastAPI(title="Playlog API", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.admin_auth = AdminAuthenticator(settings)
    app.state.cipher = TokenCipher(settings.token_encryption_key.get_secret_value())
    install_error_handlers(app)
    # Inside the request id (added first), so its 413s carry one too.
    app.add_middleware(BodyLimitMiddleware, exempt=UPLOAD_PATH)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    app.include_router(admin_router)
    app.include_router(auth_router)
    app.state.oauth_resource_metadata = oauth.install(app, settings.api_public_url)
    tools_rest.install(app, settings.api_public_url)
    mcp_manager = tools_mcp.install(app, settings.api_public_url)
    return app
