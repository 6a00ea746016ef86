"""Playlog's OAuth authorization server: how web MCP hosts obtain a personal access token.

The main test is the MCP SDK's own OAuth client: it discovers the server from /mcp's 401,
registers, sends a "browser" through the consent page, exchanges the code and calls a
tool. The rest walk the flow by hand to check each refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import TokenError
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.access_tokens import list_tokens, revoke_token
from playlog.db.engine import db_now
from playlog.db.models import ApiToken, OAuthClient, OAuthGrant, User
from playlog.testing.spotify import pkce_pair
from playlog_api.app import create_app
from playlog_api.oauth.provider import MAX_CLIENTS, PlaylogOAuthProvider
from playlog_api.settings import ApiSettings

PUBLIC = "https://playlog.example"
CALLBACK = "https://chat.example/connector/callback"


@pytest.fixture
def https_settings(api_settings: ApiSettings) -> ApiSettings:
    return api_settings.model_copy(update={"api_public_url": PUBLIC})


@pytest_asyncio.fixture
async def app(
    https_settings: ApiSettings, db_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[FastAPI]:
    application = create_app(https_settings, sessionmaker=db_sessionmaker)
    async with LifespanManager(application):
        yield application


@pytest_asyncio.fixture
async def web(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser and a connector at once: plain HTTP to the app, no redirects followed."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as web:
        yield web


def _token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _register(web: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    body = {
        "redirect_uris": [CALLBACK],
        "client_name": "Chat",
        "token_endpoint_auth_method": "none",
    }
    response = await web.post("/register", json={**body, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _consent_request(web: httpx.AsyncClient, client_id: str, challenge: str) -> str:
    """Start an authorization; returns the consent page's request id."""
    response = await web.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CALLBACK,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st4te",
        },
    )
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{PUBLIC}/oauth/consent"
    return parse_qs(location.query)["request"][0]


async def _allow(web: httpx.AsyncClient, request_id: str, token: str) -> httpx.Response:
    return await web.post(
        "/oauth/consent", data={"request": request_id, "token": token, "decision": "allow"}
    )


def _redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


async def _exchange(
    web: httpx.AsyncClient, client_id: str, code: str, verifier: str, **extra: str
) -> httpx.Response:
    return await web.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
            "code_verifier": verifier,
            **extra,
        },
    )


@dataclass(frozen=True)
class Flow:
    """An authorization started by a newly registered client, waiting on the consent page."""

    client: dict[str, Any]
    verifier: str
    request_id: str

    @property
    def client_id(self) -> str:
        return str(self.client["client_id"])


async def _start(web: httpx.AsyncClient, **registration: Any) -> Flow:
    client = await _register(web, **registration)
    verifier, challenge = pkce_pair()
    return Flow(client, verifier, await _consent_request(web, client["client_id"], challenge))


async def _code(web: httpx.AsyncClient, token: str, **registration: Any) -> tuple[Flow, str]:
    """A started authorization, allowed with ``token``, and its code."""
    flow = await _start(web, **registration)
    return flow, _redirect_query(await _allow(web, flow.request_id, token))["code"]


class _Memory(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_the_sdk_oauth_client_signs_in_and_calls_a_tool(
    app: FastAPI, db_session: AsyncSession, listener: User, personal: dict[str, str]
) -> None:
    transport = httpx2.ASGITransport(app=app)
    codes: list[AuthorizationCodeResult] = []

    async def browse(url: str) -> None:
        # The user's browser: the authorize redirect, the consent page, Allow.
        async with httpx2.AsyncClient(transport=transport) as browser:
            to_consent = await browser.get(url)
            assert to_consent.status_code == 302, to_consent.text
            page = await browser.get(to_consent.headers["location"])
            assert page.status_code == 200
            assert "Allow Playlog test connector" in page.text
            assert page.headers["x-frame-options"] == "DENY"
            request_id = parse_qs(urlsplit(to_consent.headers["location"]).query)["request"][0]
            back = await browser.post(
                f"{PUBLIC}/oauth/consent",
                data={"request": request_id, "token": _token_of(personal), "decision": "allow"},
            )
            query = parse_qs(urlsplit(back.headers["location"]).query)
            codes.append(AuthorizationCodeResult(code=query["code"][0], state=query["state"][0]))

    async def callback() -> AuthorizationCodeResult:
        return codes[-1]

    storage = _Memory()
    auth = OAuthClientProvider(
        server_url=f"{PUBLIC}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="Playlog test connector",
            redirect_uris=["http://127.0.0.1:3999/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=browse,
        callback_handler=callback,
    )
    async with (
        httpx2.AsyncClient(transport=transport, auth=auth) as http,
        Client(streamable_http_client(f"{PUBLIC}/mcp", http_client=http)) as client,
    ):
        listed = await client.list_tools()
        assert "history_taste_summary" in {tool.name for tool in listed.tools}
        result = await client.call_tool("history_coverage", {"days": 30})
        assert not result.is_error
        assert result.structured_content is not None
        assert "coverage" in result.structured_content

    assert len(codes) == 1
    assert storage.tokens is not None
    assert storage.tokens.access_token.startswith("plg_")
    issued = (
        await db_session.scalars(select(ApiToken).where(ApiToken.user_id == listener.id))
    ).all()
    assert sorted(token.name for token in issued) == ["Playlog test connector (OAuth)", "tests"]
    # The code is gone once exchanged.
    assert await db_session.scalar(select(func.count()).select_from(OAuthGrant)) == 0


async def test_mcp_401_points_to_the_metadata(web: httpx.AsyncClient) -> None:
    response = await web.post("/mcp", json={})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert f'resource_metadata="{PUBLIC}/.well-known/oauth-protected-resource/mcp"' in challenge
    # A bearer token that is neither a personal token nor the admin's (a stale one,
    # another server's) gets the same pointer, and is called invalid.
    for token in ("not-the-admin-token", "plg_" + "A" * 43):
        stale = await web.post("/mcp", json={}, headers={"Authorization": f"Bearer {token}"})
        assert stale.status_code == 401
        stale_challenge = stale.headers["www-authenticate"]
        assert f'resource_metadata="{PUBLIC}/.well-known/oauth-protected-resource/mcp"' in (
            stale_challenge
        )
        assert 'error="invalid_token"' in stale_challenge
    # Another scheme, or "Bearer" alone: asked for a token, with the same pointer.
    for authorization in ("Basic Zm9vOmJhcg==", "Bearer"):
        other = await web.post("/mcp", json={}, headers={"Authorization": authorization})
        assert other.status_code == 401
        other_challenge = other.headers["www-authenticate"]
        assert f'resource_metadata="{PUBLIC}/.well-known/oauth-protected-resource/mcp"' in (
            other_challenge
        )
        assert "error=" not in other_challenge
    for path in (
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ):
        resource = (await web.get(path)).json()
        assert resource["resource"] == f"{PUBLIC}/mcp"
        assert resource["authorization_servers"] == [f"{PUBLIC}/"]
    server = (await web.get("/.well-known/oauth-authorization-server")).json()
    assert server["authorization_endpoint"] == f"{PUBLIC}/authorize"
    assert server["token_endpoint"] == f"{PUBLIC}/token"
    assert server["registration_endpoint"] == f"{PUBLIC}/register"
    assert server["code_challenge_methods_supported"] == ["S256"]


async def test_a_wrong_token_changes_nothing_and_deny_goes_back_with_an_error(
    web: httpx.AsyncClient, db_session: AsyncSession, personal: dict[str, str]
) -> None:
    request_id = (await _start(web)).request_id
    for wrong in ("plg_" + "x" * 43, "not-a-token", _token_of(personal) + "x"):
        refused = await _allow(web, request_id, wrong)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="playlog"'
        assert "not a valid personal access token" in refused.text
        assert wrong not in refused.text
    assert (
        await db_session.scalar(select(func.count()).where(OAuthGrant.code_hash.is_not(None))) == 0
    )
    denied = await web.post("/oauth/consent", data={"request": request_id, "decision": "deny"})
    query = _redirect_query(denied)
    assert (query["error"], query["state"]) == ("access_denied", "st4te")
    assert "code" not in query
    # The request is gone: neither Allow nor the page work again.
    assert (await _allow(web, request_id, _token_of(personal))).status_code == 400
    again = await web.get("/oauth/consent", params={"request": request_id})
    assert again.status_code == 400
    assert "cannot be used" in again.text


async def test_a_code_works_once_with_its_own_verifier(
    web: httpx.AsyncClient, personal: dict[str, str]
) -> None:
    flow, code = await _code(web, _token_of(personal))
    # A second Allow on the same request issues nothing.
    assert (await _allow(web, flow.request_id, _token_of(personal))).status_code == 400
    wrong = await _exchange(web, flow.client_id, code, flow.verifier + "x")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    other = await _register(web)
    stolen = await _exchange(web, other["client_id"], code, flow.verifier)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    granted = await _exchange(web, flow.client_id, code, flow.verifier)
    assert granted.status_code == 200, granted.text
    access = granted.json()["access_token"]
    assert access.startswith("plg_")
    assert granted.json()["token_type"] == "Bearer"
    replay = await _exchange(web, flow.client_id, code, flow.verifier)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    listed = await web.post(
        "/mcp/call",
        json={"tool": "history_coverage", "args": {"days": 7}},
        headers={"Authorization": f"Bearer {access}"},
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["success"]


async def test_an_expired_code_is_refused(
    web: httpx.AsyncClient, db_session: AsyncSession, personal: dict[str, str]
) -> None:
    flow, code = await _code(web, _token_of(personal))
    await db_session.execute(
        update(OAuthGrant).values(expires_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1))
    )
    expired = await _exchange(web, flow.client_id, code, flow.verifier)
    assert (expired.status_code, expired.json()["error"]) == (400, "invalid_grant")


async def test_the_store_issues_one_token_per_code_and_none_for_an_expired_one(
    app: FastAPI, web: httpx.AsyncClient, db_session: AsyncSession, personal: dict[str, str]
) -> None:
    # The SDK's handler refuses used and expired codes before the store is asked; the
    # store refuses them too, for exchanges that race past those checks.
    provider = PlaylogOAuthProvider(
        lambda: app.state.sessionmaker, lambda: app.state.cipher, PUBLIC
    )
    flow, code = await _code(web, _token_of(personal))
    client = await provider.get_client(flow.client_id)
    assert client is not None
    loaded = await provider.load_authorization_code(client, code)
    assert loaded is not None
    assert (await provider.exchange_authorization_code(client, loaded)).access_token
    with pytest.raises(TokenError) as used:
        await provider.exchange_authorization_code(client, loaded)
    assert used.value.error_description == "the code was already used or expired"
    flow, code = await _code(web, _token_of(personal))
    client = await provider.get_client(flow.client_id)
    assert client is not None
    loaded = await provider.load_authorization_code(client, code)
    assert loaded is not None
    await db_session.execute(
        update(OAuthGrant).values(expires_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1))
    )
    with pytest.raises(TokenError) as expired:
        await provider.exchange_authorization_code(client, loaded)
    assert expired.value.error_description == "the code was already used or expired"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://chat.example/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://user:pw@chat.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://chat.example/cb#frag"]}, "invalid_redirect_uri"),
        (
            {"redirect_uris": [f"https://chat.example/{n}" for n in range(11)]},
            "invalid_redirect_uri",
        ),
        ({"redirect_uris": []}, "invalid_client_metadata"),
        ({"redirect_uris": "https://chat.example/cb"}, "invalid_client_metadata"),
        ({"redirect_uris": [CALLBACK], "scope": "admin"}, "invalid_client_metadata"),
    ],
)
async def test_registration_refuses_bad_metadata(
    web: httpx.AsyncClient, db_session: AsyncSession, body: dict[str, Any], reason: str
) -> None:
    response = await web.post("/register", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == reason
    assert await db_session.scalar(select(func.count()).select_from(OAuthClient)) == 0


async def test_registration_refuses_malformed_and_oversized_bodies(
    web: httpx.AsyncClient,
) -> None:
    broken = await web.post(
        "/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    large = await web.post(
        "/register", json={"redirect_uris": [CALLBACK], "client_name": "x" * 20_000}
    )
    assert (large.status_code, large.json()["error"]) == (400, "invalid_client_metadata")
    huge = await web.post(
        "/register", json={"redirect_uris": [CALLBACK], "client_name": "x" * 5_000_000}
    )
    assert huge.status_code == 413


async def test_registration_keeps_the_client_table_bounded(
    web: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    first = await _register(web)
    db_session.add_all(
        OAuthClient(client_id=f"filler-{n}", registration={"redirect_uris": [CALLBACK]})
        for n in range(MAX_CLIENTS - 1)
    )
    await db_session.flush()
    # Clients in use, and clients under an hour old, are never pushed out.
    await db_session.execute(update(OAuthClient).values(used_at=func.now()))
    await db_session.execute(
        update(OAuthClient)
        .where(OAuthClient.client_id == first["client_id"])
        .values(used_at=None, created_at=func.now() - func.make_interval(0, 0, 0, 0, 2))
    )
    newest = await _register(web)
    ids = set((await db_session.scalars(select(OAuthClient.client_id))).all())
    assert len(ids) == MAX_CLIENTS
    assert first["client_id"] not in ids
    assert newest["client_id"] in ids
    refused = await web.post("/register", json={"redirect_uris": [CALLBACK]})
    assert refused.status_code == 400
    assert "too many registered clients" in refused.json()["error_description"]


async def test_a_confidential_client_needs_its_secret(
    app: FastAPI, web: httpx.AsyncClient, db_session: AsyncSession, personal: dict[str, str]
) -> None:
    client = await _register(web, token_endpoint_auth_method="client_secret_post")
    secret = client["client_secret"]
    stored = await db_session.get(OAuthClient, client["client_id"])
    assert stored is not None
    assert stored.client_secret_encrypted is not None
    assert app.state.cipher.decrypt(stored.client_secret_encrypted) == secret
    assert secret not in str(stored.registration)
    verifier, challenge = pkce_pair()
    request_id = await _consent_request(web, client["client_id"], challenge)
    code = _redirect_query(await _allow(web, request_id, _token_of(personal)))["code"]
    anonymous = await _exchange(web, client["client_id"], code, verifier)
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
    granted = await _exchange(web, client["client_id"], code, verifier, client_secret=secret)
    assert granted.status_code == 200, granted.text


async def test_authorize_refuses_unknown_clients_and_redirects(web: httpx.AsyncClient) -> None:
    client = await _register(web)
    _, challenge = pkce_pair()
    base = {
        "response_type": "code",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s",
    }
    unknown = await web.get(
        "/authorize", params={**base, "client_id": "nobody", "redirect_uri": CALLBACK}
    )
    assert unknown.status_code == 400
    elsewhere = await web.get(
        "/authorize",
        params={**base, "client_id": client["client_id"], "redirect_uri": "https://evil.example/"},
    )
    # Never redirected to an address the client did not register.
    assert elsewhere.status_code == 400
    assert "location" not in elsewhere.headers


def _authorize_params(client_id: str, redirect_uri: str = CALLBACK) -> dict[str, str]:
    """An authorization request's parameters, with a fresh PKCE challenge."""
    _, challenge = pkce_pair()
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


async def test_authorize_never_bounces_a_refused_request_to_the_client(
    web: httpx.AsyncClient,
) -> None:
    """Anyone can register a client with any address: a refused request is shown here,
    so a link to this host cannot be used to send a browser on to such an address."""
    phish = "https://evil.example/phish"
    client = await _register(web, redirect_uris=[phish])
    params = {**_authorize_params(client["client_id"], phish), "state": "s"}
    for bad in ({"scope": "nope"}, {"response_type": "token"}, {"state": "s" * 501}):
        response = await web.get("/authorize", params={**params, **bad})
        assert response.status_code == 400, bad
        assert "location" not in response.headers
        assert "evil.example" not in response.text
        assert "This sign-in request cannot be used" in response.text
        assert response.headers["cache-control"] == "no-store"
    asked = await web.get(
        "/authorize", params={**params, "scope": "nope"}, headers={"Accept": "application/json"}
    )
    assert (asked.status_code, asked.json()["error"]["code"]) == (400, "invalid_scope")
    # A request it accepts still goes on to the consent page.
    accepted = await web.get("/authorize", params=params)
    assert accepted.status_code == 302
    assert urlsplit(accepted.headers["location"]).path == "/oauth/consent"


@pytest.mark.parametrize(
    "params",
    [{"request": "nope"}, {"request": "x" * 101}, {}],
)
async def test_the_consent_page_refuses_bad_requests(
    web: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await web.get("/oauth/consent", params=params)
    assert response.status_code in (400, 422)
    assert "<form" not in response.text


async def test_consent_posts_with_bad_fields_are_refused(
    web: httpx.AsyncClient, personal: dict[str, str]
) -> None:
    request_id = (await _start(web)).request_id
    for data in (
        {"request": request_id, "decision": "maybe", "token": _token_of(personal)},
        {"request": request_id, "decision": "allow", "token": "plg_" + "x" * 300},
        {"decision": "allow", "token": _token_of(personal)},
    ):
        response = await web.post("/oauth/consent", data=data)
        assert response.status_code == 422, data
    # The request is still pending and can be allowed.
    assert (await _allow(web, request_id, _token_of(personal))).status_code == 303


async def test_plain_http_to_another_host_turns_oauth_off(
    client: httpx.AsyncClient,
) -> None:
    # The shared fixture's public URL is http://testserver.
    assert (await client.get("/.well-known/oauth-authorization-server")).status_code == 404
    response = await client.post("/mcp", json={})
    assert response.status_code == 401
    assert "resource_metadata" not in response.headers["www-authenticate"]


async def test_an_oauth_token_lives_only_while_its_parent_does(
    web: httpx.AsyncClient, db_session: AsyncSession, listener: User, personal: dict[str, str]
) -> None:
    parent = await db_session.scalar(select(ApiToken).where(ApiToken.name == "tests"))
    assert parent is not None
    in_a_day = await db_now(db_session) + timedelta(days=1)
    parent.expires_at = in_a_day
    await db_session.flush()
    flow, code = await _code(web, _token_of(personal))
    access = (await _exchange(web, flow.client_id, code, flow.verifier)).json()["access_token"]
    # Signing in with that token gives a token whose parent is the first one.
    flow, code = await _code(web, access)
    second = (await _exchange(web, flow.client_id, code, flow.verifier)).json()["access_token"]
    children = (
        await db_session.scalars(select(ApiToken).where(ApiToken.parent_id.is_not(None)))
    ).all()
    assert [(child.parent_id, child.expires_at) for child in children] == [
        (parent.id, in_a_day),
        (parent.id, in_a_day),
    ]
    call = {"tool": "history_coverage", "args": {"days": 7}}
    for token in (access, second):
        headers = {"Authorization": f"Bearer {token}"}
        assert (await web.post("/mcp/call", json=call, headers=headers)).status_code == 200
    await revoke_token(db_session, listener.id, parent.id)
    for token in (access, second):
        headers = {"Authorization": f"Bearer {token}"}
        assert (await web.post("/mcp/call", json=call, headers=headers)).status_code == 401
    assert [row.active for row in await list_tokens(db_session, listener.id)] == [False] * 3


async def test_no_token_is_issued_for_a_parent_revoked_after_consent(
    web: httpx.AsyncClient, db_session: AsyncSession, listener: User, personal: dict[str, str]
) -> None:
    flow, code = await _code(web, _token_of(personal))
    parent = await db_session.scalar(select(ApiToken).where(ApiToken.name == "tests"))
    assert parent is not None
    await revoke_token(db_session, listener.id, parent.id)
    refused = await _exchange(web, flow.client_id, code, flow.verifier)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert str(listener.id) not in refused.text
    assert len(await list_tokens(db_session, listener.id)) == 1


async def test_authorize_refuses_oversized_or_malformed_parameters(
    web: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    base = _authorize_params((await _register(web))["client_id"])
    for bad in (
        {"state": "s" * 501},
        {"code_challenge": "short"},
        {"resource": "https://elsewhere.example/mcp"},
    ):
        response = await web.get("/authorize", params={**base, **bad})
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "invalid_request" in response.text
    assert await db_session.scalar(select(func.count()).select_from(OAuthGrant)) == 0
