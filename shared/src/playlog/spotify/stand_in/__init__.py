"""A faithful stand-in for Spotify's accounts service and Web API (tests, demo mode).

The web application (FastAPI) loads on first use of ``create_stand_in_app``, so that the
command line can read the configuration without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from playlog.spotify.stand_in.config import StandInAccount, StandInConfig

if TYPE_CHECKING:
    from playlog.spotify.stand_in.app import create_stand_in_app

__all__ = ["StandInAccount", "StandInConfig", "create_stand_in_app"]


def __getattr__(name: str) -> Any:
    if name == "create_stand_in_app":
        from playlog.spotify.stand_in.app import create_stand_in_app

        return create_stand_in_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
