"""Admin auth on a real admin route, in both modes; it fails closed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.testing.http import asgi_client
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings

ROUTE = "/admin/system"
USERNAME = "ops"
PASSWORD = "correct horse battery staple"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


async def test_token_mode_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(ROUTE)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="playlog"'
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token", "Bearer ", "bearer", "Token abc", "Basic b3BzOnB3"],
)
async def test_token_mode_with_wrong_credentials_is_401(
    client: httpx.AsyncClient, admin_token: str, header: str
) -> None:
    response = await client.get(ROUTE, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="playlog"')
    assert admin_token not in response.text


async def test_token_mode_wrong_token_says_invalid_token(client: httpx.AsyncClient) -> None:
    response = await client.get(ROUTE, headers={"Authorization": "Bearer not-the-token"})
    assert response.headers["www-authenticate"] == 'Bearer realm="playlog", error="invalid_token"'


async def test_a_personal_token_is_told_it_cannot_open_admin_routes(
    client: httpx.AsyncClient, basic_client: httpx.AsyncClient
) -> None:
    # Valid or not, a personal token never opens them: 403, and a message that says so.
    token = "plg_" + "x" * 40
    for web, challenge in (
        (client, 'Bearer realm="playlog"'),
        (basic_client, 'Basic realm="playlog", charset="UTF-8"'),
    ):
        response = await web.get(ROUTE, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403
        assert response.headers["www-authenticate"] == f'{challenge}, error="insufficient_scope"'
        message = response.json()["error"]["message"]
        assert message.startswith("a personal access token (plg_…) cannot use the admin routes")
        assert token not in response.text


async def test_token_mode_with_the_admin_token_is_200(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    response = await client.get(ROUTE, headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200
    assert response.json()["migration_current"] == response.json()["migration_head"]


async def test_token_prefix_or_extension_is_not_accepted(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    for candidate in (admin_token[:-1], admin_token + "x", admin_token.upper()):
        response = await client.get(ROUTE, headers={"Authorization": f"Bearer {candidate}"})
        assert response.status_code == 401


@pytest_asyncio.fixture
async def basic_client(
    database_url: str, encryption_key: str, db_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ApiSettings(
        database_url=database_url,
        token_encryption_key=encryption_key,
        admin_auth_mode="basic",
        admin_username=USERNAME,
        admin_password=PASSWORD,
    )
    async with asgi_client(create_app(settings, sessionmaker=db_sessionmaker)) as client:
        yield client


async def test_basic_mode_without_credentials_is_401(basic_client: httpx.AsyncClient) -> None:
    response = await basic_client.get(ROUTE)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="playlog", charset="UTF-8"'


@pytest.mark.parametrize(
    "header",
    [
        basic(USERNAME, "wrong password"),
        basic("root", PASSWORD),
        basic("", ""),
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Bearer " + PASSWORD,
        # Not ASCII at all (a header's bytes are read as Latin-1): a 401, not a 500.
        b"Basic \xe9",
        b"Basic \xe9\xe9\xe9\xe9",
    ],
)
async def test_basic_mode_with_wrong_credentials_is_401(
    basic_client: httpx.AsyncClient, header: str | bytes
) -> None:
    value = header.encode("latin-1") if isinstance(header, str) else header
    response = await basic_client.get(ROUTE, headers={b"Authorization": value})
    assert response.status_code == 401
    assert PASSWORD not in response.text


async def test_basic_mode_with_the_right_credentials_is_200(
    basic_client: httpx.AsyncClient,
) -> None:
    response = await basic_client.get(ROUTE, headers={"Authorization": basic(USERNAME, PASSWORD)})
    assert response.status_code == 200


async def _purge(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    """A state-changing admin request that needs no id: what a forged form would send."""
    return await client.post(
        "/admin/maintenance/purge-logs", params={"older_than_days": 1}, headers=headers
    )


@pytest.mark.parametrize(
    "marks",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        # An older browser: no Sec-Fetch-Site, but an Origin.
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        # The Origin is only asked when Sec-Fetch-Site is missing.
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
    ],
)
async def test_basic_mode_refuses_changes_a_page_of_another_site_makes_a_browser_send(
    basic_client: httpx.AsyncClient, marks: dict[str, str]
) -> None:
    """A browser sends saved Basic credentials with a form another site posts."""
    headers = {"Authorization": basic(USERNAME, PASSWORD), **marks}
    response = await _purge(basic_client, headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "another site" in response.json()["error"]["message"]
    # Reading is not refused: a page of another site cannot see the answer.
    assert (await basic_client.get(ROUTE, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "marks",
    [
        {},  # an API client, or the frontend's server-side call
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
        {"Origin": "http://testserver"},
        # Behind a proxy that rewrites Host, the browser's own mark decides.
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://playlog.example.org"},
    ],
)
async def test_basic_mode_accepts_changes_from_its_own_origin_and_api_clients(
    basic_client: httpx.AsyncClient, marks: dict[str, str]
) -> None:
    response = await _purge(basic_client, {"Authorization": basic(USERNAME, PASSWORD), **marks})
    assert response.status_code == 200
    assert response.json()["deleted"] == 0


async def test_token_mode_does_not_ask_where_a_request_comes_from(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    """A browser never sends a bearer token by itself, so no page can forge one."""
    headers = {"Authorization": f"Bearer {admin_token}", "Sec-Fetch-Site": "cross-site"}
    response = await _purge(client, headers)
    assert response.status_code == 200
