"""Test helpers for the Spotify stand-in: the OAuth dance and signed-in clients; and a
client whose requests a test answers itself."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.models import Play
from playlog.spotify.accounts import connect_account
from playlog.spotify.client import RetryPolicy, SpotifyClient
from playlog.spotify.models import CurrentUser, TokenResponse
from playlog.spotify.stand_in import StandInConfig
from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.spotify.stand_in.state import StandInState
from playlog.spotify.stand_in.web_api import WINDOW

REDIRECT_URI = "http://127.0.0.1:8000/auth/callback"
# Connects a stand-in account as a new user; returns the user's id.
Connect = Callable[[str], Awaitable[uuid.UUID]]
SCOPES = "user-read-recently-played user-top-read"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)[:96]
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Tokens:
    access_token: str
    refresh_token: str


async def authorize(
    client: httpx.AsyncClient, config: StandInConfig, scope: str = SCOPES
) -> httpx.Response:
    """Run /authorize with PKCE and return the redirect (code or error)."""
    _, challenge = pkce_pair()
    return await client.get("/authorize", params=_authorize_params(config, challenge, scope))


async def authorization_code(
    browser: httpx.AsyncClient, config: StandInConfig, scope: str = SCOPES
) -> tuple[str, str]:
    """Approve on the stand-in as a browser would; returns (code, PKCE verifier)."""
    verifier, challenge = pkce_pair()
    redirect = await browser.get("/authorize", params=_authorize_params(config, challenge, scope))
    assert redirect.status_code == 303, redirect.text
    return httpx.URL(redirect.headers["location"]).params["code"], verifier


async def sign_in(client: httpx.AsyncClient, config: StandInConfig, scope: str = SCOPES) -> Tokens:
    """The whole authorization-code flow with PKCE, as a browser and a server would do it."""
    code, verifier = await authorization_code(client, config, scope)
    exchanged = await client.post(
        "/api/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": config.client_id,
            "code_verifier": verifier,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    return Tokens(body["access_token"], body["refresh_token"])


async def sign_in_and_connect(
    stand_in: httpx.AsyncClient,
    config: StandInConfig,
    account: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
) -> uuid.UUID:
    """Sign ``account`` in on the stand-in and connect it as the api's callback does.

    The stand-in must have its control endpoints on (they choose the account to approve).
    A new account becomes a user; a returning one gets the fresh grant and its polling
    resumes. Returns the user's id.
    """
    chosen = await stand_in.post("/_control/sign-in-as", json={"account": account})
    chosen.raise_for_status()
    tokens = await sign_in(stand_in, config)
    grant = TokenResponse(
        access_token=tokens.access_token,
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
        expires_in=config.access_token_ttl_seconds,
        refresh_token=tokens.refresh_token,
        scope=SCOPES,
    )
    profile = CurrentUser(id=account, display_name=account, uri=f"spotify:user:{account}")
    async with sessionmaker.begin() as session:
        user = await connect_account(session, cipher, profile, grant)
    return user.id


@asynccontextmanager
async def signed_in_stand_in(config: StandInConfig) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process stand-in and a client already holding a user's access token."""
    transport = httpx.ASGITransport(app=create_stand_in_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://stand-in") as client:
        tokens = await sign_in(client, config)
        client.headers["Authorization"] = f"Bearer {tokens.access_token}"
        yield client


def _authorize_params(config: StandInConfig, challenge: str, scope: str) -> dict[str, str]:
    return {
        "client_id": config.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "state": "s-123",
        "scope": scope,
        "code_challenge_method": "S256",
        "code_challenge": challenge,
    }


# --- comparing what the stand-in served with what was stored ----------------------


async def stored_plays(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: uuid.UUID
) -> list[tuple[str, datetime]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Play.track_id, Play.played_at)
            .where(Play.user_id == user_id)
            .order_by(Play.played_at)
        )
        return [(track_id, played_at) for track_id, played_at in rows]


def listed_plays(state: StandInState, account: str) -> list[tuple[str, datetime]]:
    listener = state.listeners[account]
    listener.advance_to(state.clock.now())
    return [(play.track.id, play.played_at) for play in listener.listed_plays()]


def served_plays(state: StandInState, account: str) -> list[tuple[str, datetime]]:
    return sorted(state.served.get(account, {}), key=lambda key: key[1])


def listen_until_new_plays(
    state: StandInState, account: str, after: datetime
) -> list[tuple[str, datetime]]:
    """Advance simulated time in 20-minute steps until a few plays (< a window) are new."""
    for _ in range(30):
        state.clock.jump(20 * 60)
        new = [play for play in listed_plays(state, account) if play[1] > after]
        if len(new) >= 3:
            assert len(new) < WINDOW
            return new
    raise AssertionError("the simulated listener stopped listening")


@asynccontextmanager
async def mock_spotify(
    api: Callable[[httpx.Request], Any], retry: RetryPolicy | None = None
) -> AsyncIterator[SpotifyClient]:
    """A Spotify client whose requests ``api`` answers (an httpx MockTransport handler)."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        yield SpotifyClient(
            http=http,
            api_base_url="https://api.test/v1",
            accounts_base_url="https://accounts.test",
            client_id="client",
            retry=retry or RetryPolicy(),
        )
