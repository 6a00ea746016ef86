"""Test helpers for the Spotify stand-in: an in-process client and the OAuth dance."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

from playlog.spotify.stand_in import StandInConfig

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
    return await client.get(
        "/authorize",
        params={
            "client_id": config.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "s-123",
            "scope": scope,
            "code_challenge_method": "S256",
            "code_challenge": challenge,
        },
    )


async def sign_in(client: httpx.AsyncClient, config: StandInConfig, scope: str = SCOPES) -> Tokens:
    """The whole authorization-code flow with PKCE, as a browser and a server would do it."""
    verifier, challenge = pkce_pair()
    redirect = await client.get(
        "/authorize",
        params={
            "client_id": config.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "state-1",
            "scope": scope,
            "code_challenge_method": "S256",
            "code_challenge": challenge,
        },
    )
    assert redirect.status_code == 303, redirect.text
    query = parse_qs(urlsplit(redirect.headers["location"]).query)
    exchanged = await client.post(
        "/api/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT_URI,
            "client_id": config.client_id,
            "code_verifier": verifier,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    return Tokens(body["access_token"], body["refresh_token"])
