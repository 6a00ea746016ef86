"""One envelope for every error; unexpected failures reveal nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from playlog.errors import NotFound, Unauthorized
from playlog.web.errors import install_error_handlers

SECRET = "refresh-token-AQD-very-secret"


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise NotFound("item 0 does not exist", details={"item_id": 0})
        if item_id == 1:
            raise Unauthorized("no", headers={"WWW-Authenticate": 'Bearer realm="x"'})
        if item_id == 2:
            raise RuntimeError(f"database password is {SECRET}")
        return {"item_id": item_id}

    return app


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_app_error_renders_its_status_and_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/0")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "item 0 does not exist",
            "details": {"item_id": 0},
        }
    }


async def test_app_error_headers_are_sent(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="x"'


async def test_validation_error_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/not-a-number")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("item_id:")
    assert error["details"][0]["location"] == ["path", "item_id"]


async def test_unknown_route_uses_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_unexpected_error_is_a_bare_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/items/2")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }
    assert SECRET not in response.text
    assert "unhandled error on GET /items/2" in caplog.text
