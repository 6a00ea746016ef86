"""Connecting Spotify through the api against the stand-in: the whole OAuth dance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.engine import create_sessionmaker
from playlog.db.models import SpotifyToken, SyncCheckpoint, User
from playlog.errors import ConfigurationError
from playlog.settings import SpotifySettings, load_settings
from playlog.spotify.stand_in import StandInAccount, StandInConfig
from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.testing.http import asgi_client
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings

STATE_SECRET = "state-secret-" + "k3y" * 10
CONFIG = StandInConfig()
JSON = {"Accept": "application/json"}


@dataclass
class Flow:
    api: httpx.AsyncClient
    spotify: httpx.AsyncClient
    session: AsyncSession

    async def start(self) -> str:
        login = await self.api.get("/auth/login")
        assert login.status_code == 302
        return login.headers["location"]

    async def consent(self, authorize_url: str) -> str:
        parts = urlsplit(authorize_url)
        answer = await self.spotify.get(f"{parts.path}?{parts.query}")
        assert answer.status_code == 303
        back = urlsplit(answer.headers["location"])
        return f"{back.path}?{back.query}"

    async def connected_users(self) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(User).where(User.spotify_user_id == "demo-listener")
        )
        tokens = await self.session.scalar(select(func.count()).select_from(SpotifyToken))
        return (count or 0) + (tokens or 0)


def settings_for(api_settings: ApiSettings, **changes: object) -> ApiSettings:
    """The test api's settings plus a Spotify app on the stand-in (validated like real ones)."""
    values: dict[str, object] = {
        **dict(api_settings),
        "spotify_client_id": CONFIG.client_id,
        "auth_state_secret": STATE_SECRET,
        "spotify_api_base_url": "http://spotify/v1",
        "spotify_accounts_base_url": "http://spotify",
        **changes,
    }
    return ApiSettings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def open_flow(
    settings: ApiSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    stand_in: StandInConfig,
) -> AsyncIterator[Flow]:
    transport = httpx.ASGITransport(app=create_stand_in_app(stand_in))
    app = create_app(settings, sessionmaker=sessionmaker, spotify_transport=transport)
    async with (
        asgi_client(app) as api,
        httpx.AsyncClient(transport=transport, base_url="http://spotify") as spotify,
    ):
        yield Flow(api, spotify, session)


@pytest_asyncio.fixture
async def flow(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    db_session: AsyncSession,
) -> AsyncIterator[Flow]:
    async with open_flow(
        settings_for(api_settings), db_sessionmaker, db_session, StandInConfig(enable_control=True)
    ) as opened:
        yield opened


@pytest_asyncio.fixture
async def committed(db_engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Real transactions, as in production: the token manager commits on its own while the
    request's transaction runs (in the rolled-back harness both would share one connection).
    The users these tests connect are deleted afterwards."""
    sessionmaker = create_sessionmaker(db_engine)
    yield sessionmaker
    async with sessionmaker.begin() as session:
        await session.execute(
            delete(User).where(User.spotify_user_id.in_(("demo-listener", "alice", "bob")))
        )


async def test_connecting_stores_user_encrypted_tokens_and_checkpoint(
    flow: Flow, encryption_key: str
) -> None:
    authorize = await flow.start()
    assert authorize.startswith("http://spotify/authorize?")
    assert "code_challenge_method=S256" in authorize
    callback = await flow.consent(authorize)
    done = await flow.api.get(callback, headers=JSON)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "connected"
    assert body["spotify_user_id"] == "demo-listener"

    user = await flow.session.scalar(select(User).where(User.spotify_user_id == "demo-listener"))
    assert user is not None
    assert str(user.id) == body["user_id"]
    assert user.display_name == "Demo Listener"
    raw = (
        await flow.session.execute(
            text(
                "SELECT refresh_token_encrypted, access_token_encrypted, authorized_at, status"
                " FROM spotify_tokens WHERE user_id = :id"
            ),
            {"id": user.id},
        )
    ).one()
    cipher = TokenCipher(encryption_key)
    refresh, access = cipher.decrypt(raw[0]), cipher.decrypt(raw[1])
    assert refresh not in raw[0]
    assert access not in raw[1]
    assert raw[2] is not None
    assert raw[3] == "ok"
    checkpoint = await flow.session.get(SyncCheckpoint, user.id)
    assert checkpoint is not None
    assert checkpoint.status == "idle"


async def test_browser_gets_a_page_and_the_cookie_is_strict(flow: Flow) -> None:
    login = await flow.api.get("/auth/login")
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/auth" in cookie
    callback = await flow.consent(login.headers["location"])
    page = await flow.api.get(callback, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Spotify connected" in page.text
    assert "playlog_oauth=" in page.headers["set-cookie"]  # cleared


async def test_replayed_state_is_refused(flow: Flow) -> None:
    callback = await flow.consent(await flow.start())
    cookie = flow.api.cookies["playlog_oauth"]
    assert (await flow.api.get(callback, headers=JSON)).status_code == 200
    # An attacker (or a double click) sends the same answer with the same cookie again.
    flow.api.cookies.clear()
    replay = await flow.api.get(callback, headers={**JSON, "Cookie": f"playlog_oauth={cookie}"})
    assert replay.status_code == 400
    assert replay.json()["error"]["code"] == "state_used"


async def test_forged_state_is_refused_and_nothing_stored(flow: Flow) -> None:
    callback = await flow.consent(await flow.start())
    forged = callback.replace("state=", "state=forged")
    response = await flow.api.get(forged, headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "state_mismatch"
    assert await flow.connected_users() == 0


async def test_callback_without_the_cookie_is_refused(flow: Flow) -> None:
    callback = await flow.consent(await flow.start())
    flow.api.cookies.clear()
    response = await flow.api.get(callback, headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "state_missing"
    assert await flow.connected_users() == 0


async def test_invalid_code_is_refused_and_nothing_stored(flow: Flow) -> None:
    callback = await flow.consent(await flow.start())
    path, _, query = callback.partition("?")
    state = dict(item.split("=", 1) for item in query.split("&"))["state"]
    response = await flow.api.get(f"{path}?code=bogus&state={state}", headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "code_rejected"
    assert await flow.connected_users() == 0


async def test_denied_consent_stores_nothing(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    db_session: AsyncSession,
) -> None:
    async with open_flow(
        settings_for(api_settings), db_sessionmaker, db_session, StandInConfig(approve=False)
    ) as flow:
        callback = await flow.consent(await flow.start())
        assert "error=access_denied" in callback
        page = await flow.api.get(callback)
        assert page.status_code == 400
        assert "You declined access on Spotify" in page.text
        assert await flow.connected_users() == 0


async def test_allowlist_refuses_other_accounts(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    db_session: AsyncSession,
) -> None:
    settings = settings_for(api_settings, auth_allowed_spotify_ids="someone, else")
    async with open_flow(settings, db_sessionmaker, db_session, StandInConfig()) as flow:
        callback = await flow.consent(await flow.start())
        response = await flow.api.get(callback, headers=JSON)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "account_not_allowed"
        assert await flow.connected_users() == 0


async def test_reconnecting_clears_needs_reauth(flow: Flow) -> None:
    first = await flow.api.get(await flow.consent(await flow.start()), headers=JSON)
    user_id = first.json()["user_id"]
    await flow.session.execute(
        text("UPDATE spotify_tokens SET status = 'needs_reauth', status_reason = 'revoked'")
    )
    await flow.session.execute(text("UPDATE sync_checkpoints SET status = 'needs_reauth'"))
    again = await flow.api.get(await flow.consent(await flow.start()), headers=JSON)
    assert again.json()["user_id"] == user_id
    flow.session.expire_all()
    token = await flow.session.get(SpotifyToken, again.json()["user_id"])
    checkpoint = await flow.session.get(SyncCheckpoint, again.json()["user_id"])
    assert token is not None
    assert token.status == "ok"
    assert checkpoint is not None
    assert checkpoint.status == "idle"


async def test_sign_in_without_a_spotify_app_is_503(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/login")
    assert response.status_code == 503
    assert "SPOTIFY_CLIENT_ID" in response.json()["error"]["message"]


def test_spotify_settings_enforce_the_redirect_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTIFY_REDIRECT_URI", "http://localhost:8000/auth/callback")
    with pytest.raises(ConfigurationError, match="rejects 'localhost'"):
        load_settings(SpotifySettings)
    monkeypatch.setenv("SPOTIFY_REDIRECT_URI", "http://playlog.example/auth/callback")
    with pytest.raises(ConfigurationError, match="must be https"):
        load_settings(SpotifySettings)
    monkeypatch.setenv("SPOTIFY_REDIRECT_URI", "https://playlog.example/auth/callback")
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "abc")
    with pytest.raises(ConfigurationError, match="AUTH_STATE_SECRET is required"):
        load_settings(SpotifySettings)
    monkeypatch.setenv("AUTH_STATE_SECRET", STATE_SECRET)
    assert load_settings(SpotifySettings).spotify_configured


async def test_check_connection_refreshes_rotates_and_detects_revocation(
    api_settings: ApiSettings,
    committed: async_sessionmaker[AsyncSession],
    admin_token: str,
    encryption_key: str,
) -> None:
    async with (
        committed() as session,
        open_flow(
            settings_for(api_settings), committed, session, StandInConfig(enable_control=True)
        ) as flow,
    ):
        admin = {"Authorization": f"Bearer {admin_token}"}
        connected = await flow.api.get(await flow.consent(await flow.start()), headers=JSON)
        user_id = connected.json()["user_id"]
        cipher = TokenCipher(encryption_key)

        async def stored_refresh_token() -> str:
            flow.session.expire_all()
            row = await flow.session.get(SpotifyToken, user_id)
            assert row is not None
            return cipher.decrypt(row.refresh_token_encrypted)

        check = await flow.api.post(f"/admin/users/{user_id}/check-connection", headers=admin)
        assert check.status_code == 200
        assert check.json()["spotify_user_id"] == "demo-listener"
        before = await stored_refresh_token()

        # Forced expiry: one refresh, and the rotated refresh token is what is stored now.
        await flow.spotify.post("/_control/expire-access-tokens")
        check = await flow.api.post(f"/admin/users/{user_id}/check-connection", headers=admin)
        assert check.status_code == 200
        rotated = await stored_refresh_token()
        assert rotated != before

        # Revoked on Spotify's side: the user is marked needs_reauth, visible to the admin.
        await flow.spotify.post("/_control/revoke", json={"account": "demo-listener"})
        await flow.spotify.post("/_control/expire-access-tokens")
        check = await flow.api.post(f"/admin/users/{user_id}/check-connection", headers=admin)
        assert check.status_code == 409
        assert check.json()["error"]["code"] == "spotify_reauth_required"
        detail = (await flow.api.get(f"/admin/users/{user_id}", headers=admin)).json()
        assert detail["spotify"]["state"] == "needs_reauth"
        assert "refresh token rejected" in detail["spotify"]["reason"]
        assert detail["checkpoint"]["status"] == "needs_reauth"


async def test_email_scopes_only_when_configured(
    api_settings: ApiSettings,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    db_session: AsyncSession,
) -> None:
    for request_email, expected in (
        (False, "user-read-recently-played user-top-read"),
        (True, "user-read-recently-played user-top-read user-read-email user-read-private"),
    ):
        settings = settings_for(api_settings, spotify_request_email=request_email)
        async with open_flow(settings, db_sessionmaker, db_session, StandInConfig()) as flow:
            authorize = httpx.URL(await flow.start())
            assert authorize.params["scope"] == expected


async def test_revoking_one_user_leaves_the_others_connected(
    api_settings: ApiSettings, committed: async_sessionmaker[AsyncSession], admin_token: str
) -> None:
    admin = {"Authorization": f"Bearer {admin_token}"}
    two = StandInConfig(
        enable_control=True,
        accounts=(StandInAccount("alice", "Alice"), StandInAccount("bob", "Bob", seed=1)),
        authorize_as="alice",
    )
    async with (
        committed() as session,
        open_flow(settings_for(api_settings), committed, session, two) as flow,
    ):
        users = {}
        for account in ("alice", "bob"):
            await flow.spotify.post("/_control/sign-in-as", json={"account": account})
            done = await flow.api.get(await flow.consent(await flow.start()), headers=JSON)
            users[account] = done.json()["user_id"]
        await flow.spotify.post("/_control/revoke", json={"account": "alice"})
        await flow.spotify.post("/_control/expire-access-tokens")
        checks = {
            account: await flow.api.post(f"/admin/users/{user}/check-connection", headers=admin)
            for account, user in users.items()
        }
        assert checks["alice"].status_code == 409
        assert checks["bob"].status_code == 200
        assert checks["bob"].json()["spotify"]["state"] == "ok"
