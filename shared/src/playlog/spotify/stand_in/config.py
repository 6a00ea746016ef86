"""Configuration of the Spotify stand-in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StandInAccount:
    """A simulated Spotify user with a listener that keeps playing music."""

    user_id: str
    display_name: str
    # Seed of the listener's choices: the same seed plays the same history.
    seed: int = 0


@dataclass
class StandInConfig:
    client_id: str = "playlog-stand-in-client"
    client_secret: str = "playlog-stand-in-secret"  # noqa: S105 - the stand-in's own app
    # Exact redirect URIs registered for the app (Spotify compares them literally).
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1:8000/auth/callback",)
    accounts: tuple[StandInAccount, ...] = (StandInAccount("demo-listener", "Demo Listener"),)
    # The account /authorize signs in as (a real browser would ask who is logging in).
    authorize_as: str = "demo-listener"
    # False: /authorize answers as if the user clicked "Cancel".
    approve: bool = True
    # Simulated seconds per real second for the listeners' clock.
    speed: float = 1.0
    # Simulated history already played when the stand-in starts.
    history_hours: float = 6.0
    access_token_ttl_seconds: int = 3600
    # Refresh tokens die this long after the user authorised the app (six months).
    refresh_token_lifetime_days: int = 182
    # Whether a refresh returns a new refresh token (and retires the old one).
    rotate_refresh_tokens: bool = True
    # App-wide rolling 30-second request budget; 0 turns the limit off.
    rate_limit_per_30s: int = 0
    # The test-only /_control endpoints. Off unless asked for explicitly.
    enable_control: bool = False
    catalog_seed: int = 2026
    catalog_artists: int = 120
