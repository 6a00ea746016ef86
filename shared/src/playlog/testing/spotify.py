"""Test helpers for the Spotify stand-in: the OAuth dance and signed-in clients."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from playlog.spotify.stand_in import StandInConfig, create_stand_in_app

REDIRECT_URI = "http://127.0.0.1:8000/auth/callback"
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
