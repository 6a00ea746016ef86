"""The frontend application factory."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel

from playlog import __version__
from playlog.web.admin_auth import AdminAuthenticator
from playlog.web.errors import install_error_handlers
from playlog_frontend.settings import FrontendSettings


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


def create_app(settings: FrontendSettings) -> FastAPI:
    app = FastAPI(title="Playlog dashboard", version=__version__, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.admin_auth = AdminAuthenticator(settings)
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> Liveness:
        """The process is up and serving requests."""
        return Liveness()

    return app
