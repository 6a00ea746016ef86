"""A faithful stand-in for Spotify's accounts service and Web API (tests, demo mode).

The package itself holds only the configuration, so the command line reads it without
loading the web application (``playlog.spotify.stand_in.app``, FastAPI).
"""

from playlog.spotify.stand_in.config import StandInAccount, StandInConfig

__all__ = ["StandInAccount", "StandInConfig"]
