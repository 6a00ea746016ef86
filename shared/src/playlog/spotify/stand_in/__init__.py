"""A faithful stand-in for Spotify's accounts service and Web API (tests, demo mode)."""

from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.spotify.stand_in.config import StandInAccount, StandInConfig

__all__ = ["StandInAccount", "StandInConfig", "create_stand_in_app"]
