"""Dependencies of the api's endpoints that are not about one feature."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from playlog_api.settings import ApiSettings


def get_settings(request: Request) -> ApiSettings:
    """The settings the app was created with."""
    settings: ApiSettings = request.app.state.settings
    return settings


Settings = Annotated[ApiSettings, Depends(get_settings)]
