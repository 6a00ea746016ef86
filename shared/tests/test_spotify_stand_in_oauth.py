"""The stand-in's accounts service: authorize, code exchange with PKCE, refresh."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio

from playlog.spotify.models import TokenResponse
from playlog.spotify.stand_in import StandInConfig
from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.testing.spotify import REDIRECT_URI, authorize, pkce_pair, sign_in

CONFIG = StandInConfig(enable_control=True)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_stand_in_app(StandInConfig(enable_control=True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stand-in") as client:
        yield client


def redirect_query(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return parse_qs(location.query)


async def test_authorize_redirects_with_code_and_state(client: httpx.AsyncClient) -> None:
    query = redirect_query(await authorize(client, CONFIG))
    assert query["state"] == ["s-123"]
    assert len(query["code"][0]) >= 32


async def test_denied_consent_redirects_with_access_denied() -> None:
    app = create_stand_in_app(StandInConfig(approve=False))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://stand-in"
    ) as client:
        query = redirect_query(await authorize(client, CONFIG))
    assert query == {"error": ["access_denied"], "state": ["s-123"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_id": "someone-else"}, "INVALID_CLIENT: Invalid client"),
        ({"redirect_uri": "http://localhost:8000/auth/callback"}, "Invalid redirect URI"),
    ],
)
async def test_authorize_rejects_unknown_clients_and_redirects(
    client: httpx.AsyncClient, change: dict[str, str], message: str
) -> None:
    params = {
        "client_id": CONFIG.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        **change,
    }
    response = await client.get("/authorize", params=params)
    assert response.status_code == 400
    assert message in response.text


async def test_authorize_rejects_plain_pkce_and_unknown_scopes(client: httpx.AsyncClient) -> None:
    base = {"client_id": CONFIG.client_id, "response_type": "code", "redirect_uri": REDIRECT_URI}
    plain = await client.get(
        "/authorize", params={**base, "code_challenge_method": "plain", "code_challenge": "x" * 43}
    )
    assert redirect_query(plain)["error"] == ["invalid_request"]
    scoped = await client.get("/authorize", params={**base, "scope": "user-read-everything"})
    assert redirect_query(scoped)["error"] == ["invalid_scope"]


async def test_code_exchange_with_pkce_returns_both_tokens(client: httpx.AsyncClient) -> None:
    tokens = await sign_in(client, CONFIG)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {tokens.access_token}"})
    assert me.status_code == 200
    assert me.json()["id"] == "demo-listener"


async def _code(client: httpx.AsyncClient, challenge: str) -> str:
    response = await client.get(
        "/authorize",
        params={
            "client_id": CONFIG.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "code_challenge_method": "S256",
            "code_challenge": challenge,
        },
    )
    return redirect_query(response)["code"][0]


async def test_code_is_single_use_and_needs_the_right_verifier(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    code = await _code(client, challenge)
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CONFIG.client_id,
    }
    wrong = await client.post("/api/token", data={**exchange, "code_verifier": other_verifier})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # A failed exchange burns the code too: replaying it with the right verifier fails.
    replay = await client.post("/api/token", data={**exchange, "code_verifier": verifier})
    assert replay.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid authorization code",
    }


async def test_basic_client_auth_is_accepted_and_checked(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    code = await _code(client, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    bad = base64.b64encode(f"{CONFIG.client_id}:wrong".encode()).decode()
    refused = await client.post("/api/token", data=form, headers={"Authorization": f"Basic {bad}"})
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"

    code = await _code(client, challenge)
    good = base64.b64encode(f"{CONFIG.client_id}:{CONFIG.client_secret}".encode()).decode()
    accepted = await client.post(
        "/api/token", data={**form, "code": code}, headers={"Authorization": f"Basic {good}"}
    )
    assert accepted.status_code == 200
    parsed = TokenResponse.model_validate(accepted.json())
    assert parsed.refresh_token is not None
    assert parsed.token_type == "Bearer"


async def test_refresh_rotates_and_retires_the_old_token(client: httpx.AsyncClient) -> None:
    tokens = await sign_in(client, CONFIG)
    form = {"grant_type": "refresh_token", "client_id": CONFIG.client_id}
    first = await client.post("/api/token", data={**form, "refresh_token": tokens.refresh_token})
    rotated = TokenResponse.model_validate(first.json())
    assert rotated.refresh_token not in (None, tokens.refresh_token)
    stale = await client.post("/api/token", data={**form, "refresh_token": tokens.refresh_token})
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    again = await client.post("/api/token", data={**form, "refresh_token": rotated.refresh_token})
    assert again.status_code == 200


async def test_refresh_token_dies_six_months_after_authorisation(
    client: httpx.AsyncClient,
) -> None:
    tokens = await sign_in(client, CONFIG)
    form = {"grant_type": "refresh_token", "client_id": CONFIG.client_id}
    await client.post("/_control/clock", json={"seconds": 180 * 86_400})
    refreshed = await client.post(
        "/api/token", data={**form, "refresh_token": tokens.refresh_token}
    )
    assert refreshed.status_code == 200
    # Refreshing did not extend the lifetime: three more days and it is gone.
    await client.post("/_control/clock", json={"seconds": 3 * 86_400})
    expired = await client.post(
        "/api/token", data={**form, "refresh_token": refreshed.json()["refresh_token"]}
    )
    assert expired.status_code == 400
    assert expired.json() == {
        "error": "invalid_grant",
        "error_description": "Refresh token revoked",
    }


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "forged"}, "invalid_grant"),
    ],
)
async def test_token_endpoint_errors(
    client: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    response = await client.post("/api/token", data={**form, "client_id": CONFIG.client_id})
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_revoked_account_cannot_refresh_or_call(client: httpx.AsyncClient) -> None:
    tokens = await sign_in(client, CONFIG)
    await client.post("/_control/revoke", json={"account": "demo-listener"})
    refresh = await client.post(
        "/api/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CONFIG.client_id,
            "refresh_token": tokens.refresh_token,
        },
    )
    assert refresh.json()["error"] == "invalid_grant"
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {tokens.access_token}"})
    assert me.status_code == 401


async def test_control_endpoints_are_absent_unless_enabled() -> None:
    app = create_stand_in_app(StandInConfig())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://stand-in"
    ) as client:
        response = await client.post("/_control/revoke", json={"account": "demo-listener"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"grant_type": "refresh_token"}', {"Content-Type": "application/json"}),
        (b"grant_type=" + b"x" * 20_000, {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"grant_type=\xff\xfe", {"Content-Type": "application/x-www-form-urlencoded"}),
    ],
)
async def test_token_endpoint_refuses_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
) -> None:
    response = await client.post("/api/token", content=content, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
